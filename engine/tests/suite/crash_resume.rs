//! Kill -9 and resume, for real: a child process runs a population of durable Standard
//! executions on a `RedbStore`, its Task handlers appending every invocation to a log; the
//! test SIGKILLs it mid-run, reads which steps the store had completed, restarts the
//! process on the same store, and checks that every execution finishes with the right
//! output and that no step completed before the kill ran again.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use sfn::executor::{Engine, Input, MachineSpec, Shutdown};
use sfn::handlers::{Handler, Registry};
use sfn::store::{ListFilter, RecordStatus, RedbStore, Store};
use sfn::validate::MachineType;

const EXECUTIONS: usize = 120;
const STEPS: [&str; 3] = ["Reserve", "Charge", "Ship"];
const ENV: &str = "SFN_CRASH_RESUME_CHILD";

const DEFINITION: &str = r#"{"StartAt":"Reserve","States":{
  "Reserve":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:step","ResultPath":"$.reserve","Next":"Pause"},
  "Pause":{"Type":"Wait","Seconds":1,"Next":"Charge"},
  "Charge":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:step","ResultPath":"$.charge","Next":"Ship"},
  "Ship":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:step","ResultPath":"$.ship","End":true}}}"#;

/// The child process's body (a no-op when run as an ordinary test).
#[test]
fn child_process() {
    let Ok(spec) = std::env::var(ENV) else { return };
    let (mode, dir) = spec.split_once(':').expect("mode:dir");
    let dir = PathBuf::from(dir);
    let store = Arc::new(RedbStore::open(&dir.join("store")).expect("store opens"));
    let log_path = dir.join("invocations.log");
    let mut handlers = Registry::new();
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:step",
        Handler::future(move |ctx, input: Json| {
            let log_path = log_path.clone();
            async move {
                // Some work, so that kills land while handlers are in flight.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let name = input["name"].as_str().unwrap_or("?").to_owned();
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("log");
                // One write per line: O_APPEND keeps lines whole across concurrent handlers.
                f.write_all(format!("{name} {}\n", ctx.state_name).as_bytes()).expect("log write");
                Ok(json!(format!("{} done", ctx.state_name)))
            }
        }),
    );
    let engine = Engine::builder().shards(2).handlers(handlers).store(store.clone()).build();
    let m = engine.register(MachineSpec::new("Orders", DEFINITION.as_bytes(), MachineType::Standard)).unwrap();
    if mode == "start" {
        for i in 0..EXECUTIONS {
            let name = format!("order-{i}");
            let input = Input::from_json(format!(r#"{{"name":"{name}"}}"#)).unwrap();
            engine.start(&m, &input, Some(&name)).unwrap();
        }
        // Runs until killed.
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    // Resume: registering the machine resumed every unfinished execution.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let running = store.unfinished(m.arn()).unwrap().len();
        if running == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    engine.shutdown(Shutdown::Drain(Duration::from_secs(5)));
    store.flush().unwrap();
}

fn spawn(mode: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            crate::test_name(module_path!(), "child_process").as_str(),
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ENV, format!("{mode}:{}", dir.display()))
        .spawn()
        .expect("the test binary starts again")
}

fn invocations(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("invocations.log")).unwrap_or_default();
    text.lines().filter_map(|l| l.split_once(' ')).map(|(a, b)| (a.to_owned(), b.to_owned())).collect()
}

/// The (execution, state) pairs whose task success the store holds.
fn completed(store: &RedbStore) -> HashSet<(String, String)> {
    let mut done = HashSet::new();
    let mut token = None;
    loop {
        let page = store.list_executions(&ListFilter::default(), 100, token.as_deref()).unwrap();
        for r in &page.items {
            let events = store.history(&r.execution_arn, false, 10_000, None).unwrap().items;
            let mut state = String::new();
            for e in events {
                let e: Json = serde_json::from_slice(&e).unwrap();
                match e["type"].as_str().unwrap() {
                    "TaskStateEntered" => state = e["stateEnteredEventDetails"]["name"].as_str().unwrap().to_owned(),
                    "LambdaFunctionSucceeded" | "TaskSucceeded" => {
                        done.insert((r.name.clone(), state.clone()));
                    }
                    _ => {}
                }
            }
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => return done,
        }
    }
}

#[test]
fn killed_mid_run_every_execution_resumes_and_no_completed_step_runs_twice() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    // Kill points: in the first steps (handlers in flight, the first Waits armed), and
    // after the Waits (second and third steps in flight).
    kill_and_resume("early", EXECUTIONS / 2);
    kill_and_resume("late", EXECUTIONS * 2);
}

fn kill_and_resume(tag: &str, kill_after: usize) {
    let dir = std::env::temp_dir().join(format!("sfn-crash-resume-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    let mut child = spawn("start", &dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while invocations(&dir).len() < kill_after {
        assert!(Instant::now() < deadline, "the first process made no progress");
        assert!(child.try_wait().unwrap().is_none(), "the first process ended by itself");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let before = invocations(&dir).len();

    let done_before = {
        let store = RedbStore::open(&dir.join("store")).expect("the store reopens after a kill");
        completed(&store)
    };
    assert!(!done_before.is_empty());
    assert!(done_before.len() < EXECUTIONS * STEPS.len(), "the kill came after everything had finished");

    let mut child = spawn("resume", &dir);
    let status = child.wait().unwrap();
    assert!(status.success(), "the resuming process failed: {status}");

    let store = RedbStore::open(&dir.join("store")).unwrap();
    // An early kill can come while the first process is still starting executions: the
    // ones whose start had not been stored never existed.
    let all = store.list_executions(&ListFilter::default(), 1000, None).unwrap().items;
    assert!(!all.is_empty() && all.len() <= EXECUTIONS);
    for r in &all {
        assert_eq!(r.status, RecordStatus::Succeeded, "{} ended {:?}: {:?} {:?}", r.name, r.status, r.error, r.cause);
        let out: Json = serde_json::from_str(r.output.as_deref().unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"name": r.name, "reserve": "Reserve done", "charge": "Charge done", "ship": "Ship done"})
        );
    }
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    for k in invocations(&dir) {
        *counts.entry(k).or_default() += 1;
    }
    let names: HashSet<&str> = all.iter().map(|r| r.name.as_str()).collect();
    assert!(counts.keys().all(|(name, _)| names.contains(name.as_str())), "a step ran for an execution never stored");
    for r in &all {
        for s in STEPS {
            let k = (r.name.clone(), s.to_owned());
            let n = counts.get(&k).copied().unwrap_or(0);
            assert!(n >= 1, "{k:?} never ran");
            if done_before.contains(&k) {
                assert_eq!(n, 1, "{k:?} had completed before the kill and ran again");
            } else {
                assert!(n <= 2, "{k:?} ran {n} times");
            }
        }
    }
    eprintln!(
        "crash_resume ({tag}): {} executions stored, {before} invocations before the kill, {} steps completed in \
         the store, {} invocations in all",
        all.len(),
        done_before.len(),
        counts.values().sum::<usize>()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
