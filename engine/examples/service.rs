//! Embedding the sharded engine in a tokio service.
//!
//! `cargo run --release -p sfn-engine --example service` serves the rider-photo Express
//! workflow over TCP on 127.0.0.1:7878: each line a client sends is an execution input;
//! the service answers with one line, the synchronous result (`start_sync`). The Lambda
//! tasks are asynchronous handlers running on the service's own tokio runtime (they sleep
//! a millisecond, standing in for I/O), so the shards never wait on them.
//!
//! `... --example service -- --self-test` starts the service, connects 50 clients that
//! each send 20 inputs, prints a few answers and the engine's metrics, and exits.

use std::sync::Arc;
use std::time::Duration;

use sfn::executor::{Engine, Input, MachineSpec, Shutdown};
use sfn::handlers::{Handler, Registry};
use sfn::validate::MachineType;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const ADDR: &str = "127.0.0.1:7878";

fn handlers() -> Registry {
    let mut r = Registry::new();
    r.register(
        "arn:aws:lambda:*:*:function:*",
        Handler::future(|ctx, input| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(serde_json::json!({"handledBy": ctx.state_name, "key": input.get("s3Key")}))
        }),
    );
    r
}

async fn serve(engine: Arc<Engine>, listener: TcpListener) -> std::io::Result<()> {
    let machine = engine.machine("RiderPhotoProcessingExpress").expect("registered");
    loop {
        let (socket, _) = listener.accept().await?;
        let (engine, machine) = (engine.clone(), machine.clone());
        tokio::spawn(async move {
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = match Input::from_json(line.into_bytes()) {
                    Err(e) => format!("{{\"error\":{:?}}}", e.to_string()),
                    Ok(input) => match engine.start_sync(&machine, &input, None).await {
                        Ok(r) => format!(
                            "{{\"status\":\"{}\",\"output\":{},\"billedMs\":{}}}",
                            r.status.as_str(),
                            r.output.as_deref().unwrap_or("null"),
                            r.billing.billed_duration_in_milliseconds
                        ),
                        Err(e) => format!("{{\"error\":{:?}}}", e.to_string()),
                    },
                };
                if write.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn client(id: usize, n: usize) -> std::io::Result<Vec<String>> {
    let socket = TcpStream::connect(ADDR).await?;
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut answers = Vec::new();
    for i in 0..n {
        let input = format!(r#"{{"userId":"user_{id}","s3Bucket":"photos","s3Key":"{id}_{i}.jpg"}}"#);
        write.write_all(format!("{input}\n").as_bytes()).await?;
        answers.push(lines.next_line().await?.unwrap_or_default());
    }
    Ok(answers)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let definition = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/rider-photo.express.asl.json"))?;
    // The engine's asynchronous handlers run on this service's runtime.
    let engine =
        Arc::new(Engine::builder().handlers(handlers()).tokio_handle(tokio::runtime::Handle::current()).build());
    let machine =
        engine.register(MachineSpec::new("RiderPhotoProcessingExpress", &definition, MachineType::Express))?;
    let listener = TcpListener::bind(ADDR).await?;
    println!("serving {} on {ADDR}", machine.arn());
    let server = tokio::spawn(serve(engine.clone(), listener));

    if std::env::args().any(|a| a == "--self-test") {
        let clients: Vec<_> = (0..50).map(|id| tokio::spawn(client(id, 20))).collect();
        let mut answers = Vec::new();
        for c in clients {
            answers.extend(c.await??);
        }
        for a in answers.iter().take(3) {
            println!("{a}");
        }
        let m = engine.metrics(&machine);
        println!(
            "{} answers; engine: {} succeeded, {} failed, p99 duration {:.2} ms, {} state transitions",
            answers.len(),
            m.succeeded,
            m.failed,
            m.duration_ns.value_at_quantile(0.99) as f64 / 1e6,
            m.transitions
        );
        server.abort();
        // Shutting down joins the shard threads: do it off the async threads.
        let report =
            tokio::task::spawn_blocking(move || engine.shutdown(Shutdown::Drain(Duration::from_secs(5)))).await?;
        println!("shut down; {} executions abandoned", report.abandoned);
        return Ok(());
    }
    server.await??;
    Ok(())
}
