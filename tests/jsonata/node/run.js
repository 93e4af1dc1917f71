// Evaluates JSONata expressions with the reference implementation (jsonata-js, the exact
// version AWS Step Functions runs; pinned in package.json) for engine/tests/jsonata_diff.rs.
//
// stdin:  one JSON object per line: {"id", "expr", "input"?, "bindings"?}
//         (no "input": `$` is undefined; "bindings": variables by name, `states` included)
// stdout: one JSON object per line, in the same order: {"id", "value"} for a result,
//         {"id", "undefined": true} when there is none (or it is a function, which JSON
//         cannot hold), {"id", "error": {"code", "message", "position"}} when parsing or
//         evaluation fails; "message" is "<code>: <text>", as AWS quotes it in causes.
"use strict";
const jsonata = require("jsonata");
const readline = require("readline");

function failure(e) {
  const text = e && e.message !== undefined ? String(e.message) : String(e);
  const code = e && typeof e.code === "string" ? e.code : null;
  return { code, message: code ? `${code}: ${text}` : text, position: e && typeof e.position === "number" ? e.position : null };
}

async function evaluate(c) {
  let expr;
  try {
    expr = jsonata(c.expr);
  } catch (e) {
    return { error: failure(e) };
  }
  try {
    const result = await expr.evaluate(c.input, c.bindings || {});
    const text = JSON.stringify(result);
    return text === undefined ? { undefined: true } : { value: JSON.parse(text) };
  } catch (e) {
    return { error: failure(e) };
  }
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const c = JSON.parse(line);
    const out = await evaluate(c);
    process.stdout.write(JSON.stringify({ id: c.id, ...out }) + "\n");
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
