#!/usr/bin/env node
// A Lua 5.4 program (the wasmoon build of Lua from npm, which nobody here wrote) migrated live
// between two processes while it runs, then continued at the destination from its migrated
// memory; its result is checked against a run that never moved.
//
//   node examples/lua-live/migrate.mjs [--steps N] [--json]
//
// Lua keeps its whole state in the WebAssembly memory of the wasmoon module, and never marks a
// page dirty: the source copies that memory into a pagewire region at each dirty sync and finds
// what changed by hash (trackByHash). What else the destination needs: the lua_State pointer
// (the device state) and the same module instantiated the same way, whose WebAssembly globals (the
// stack pointer, between calls) and function table are then the same as the source's.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { LuaFactory } from "wasmoon";
import { Region, Source, Listener, precopy } from "pagewire";

const PROGRAM = `
state = { i = 0, acc = 0 }
-- One slice of a long computation; the host calls it again and again.
function step()
  for k = 1, 20000 do
    state.i = state.i + 1
    state.acc = (state.acc * 31 + state.i) % 1000000007
  end
  return state.i
end`;

const args = process.argv.slice(2);
const steps = Number(args[args.indexOf("--steps") + 1] ?? 0) || 300;

/** A fresh Lua VM in a fresh wasmoon module, with the program loaded. */
async function startLua() {
  const engine = await new LuaFactory().createEngine();
  await engine.doString(PROGRAM);
  return { engine, api: engine.global.lua, L: engine.global.address, heap: () => engine.global.lua.module.HEAPU8 };
}

/** Calls step() on lua_State L through the C API, as the host does; returns state.i. */
function step(api, L) {
  api.lua_getglobal(L, "step");
  if (api.lua_pcallk(L, 0, 1, 0, 0, null) !== 0) throw new Error("step() failed");
  const i = api.lua_tonumberx(L, -1, null);
  api.lua_settop(L, -2);
  return i;
}

/** state.acc, the program's result so far. */
function result(api, L) {
  api.lua_getglobal(L, "state");
  api.lua_getfield(L, -1, "acc");
  const acc = api.lua_tonumberx(L, -1, null);
  api.lua_settop(L, -3);
  return acc;
}

const STEP_ITERATIONS = 20000;

if (args[0] === "destination") {
  // The destination: receive the memory, start the same module, put the memory in, go on.
  const listener = new Listener({
    hooks: {
      resume: async (deviceState, regions) => {
        const { L, heapBytes, done } = JSON.parse(new TextDecoder().decode(deviceState));
        const lua = await startLua();
        if (lua.heap().length !== heapBytes) throw new Error(`the memory grew on the source (${heapBytes} bytes), this example does not grow it`);
        lua.heap().set(regions[0].pages(0, heapBytes / regions[0].pageSize));
        const resumedAt = performance.now();
        let at = done;
        while (at < steps * STEP_ITERATIONS) at = step(lua.api, L);
        process.send({ type: "finished", result: result(lua.api, L), resumedAtStep: done / STEP_ITERATIONS, resumedAt, ms: performance.now() - resumedAt });
      },
    },
  });
  const port = await listener.listen(0);
  process.send({ type: "listening", port });
  await listener.next();
} else {
  // The reference: the same program, never moved.
  const alone = await startLua();
  for (let s = 0; s < steps; s++) step(alone.api, alone.L);
  const expected = result(alone.api, alone.L);

  const destination = fork(fileURLToPath(import.meta.url), ["destination", "--steps", String(steps)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const message = (type) => new Promise((resolve) => destination.on("message", (m) => m.type === type && resolve(m)));
  const { port } = await message("listening");
  const finished = message("finished");

  const lua = await startLua();
  const heapBytes = lua.heap().length;
  const region = Region.create({ pageCount: heapBytes / 4096, hashTracking: true });
  const copyIn = () => region.bytes.set(lua.heap(), region.layout.guest);
  // The program runs in slices on this thread while the migration's rounds go on between them.
  let running = true;
  let done = 0;
  let slices = 0;
  const loop = (async () => {
    while (running && done < steps * STEP_ITERATIONS) {
      done = step(lua.api, lua.L);
      slices++;
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  const warmStart = performance.now();
  while (slices < steps / 4) await new Promise((resolve) => setTimeout(resolve, 1));
  const rateBefore = (slices * 1000) / (performance.now() - warmStart);
  copyIn();
  const before = slices;
  const startedAt = performance.now();
  const stats = await new Source([region], {
    host: "127.0.0.1", port, policy: precopy(), trackByHash: true,
    hooks: {
      beforeSync: copyIn,
      pause: async () => {
        running = false;
        await loop;
      },
      deviceState: () => new TextEncoder().encode(JSON.stringify({ L: lua.L, heapBytes, done })),
    },
  }).migrate();
  const during = ((slices - before) * 1000) / (performance.now() - startedAt);
  const end = await finished;
  destination.kill();
  const report = {
    program: "Lua 5.4 (wasmoon)", steps, expected, moved: end.result, equal: end.result === expected,
    "paused-at-step": end.resumedAtStep, "downtime-ms": stats.downtime, "total-ms": stats["total-time"], "bytes": stats.transferred, rounds: stats.rounds.length,
    "steps-per-second-before": rateBefore, "steps-per-second-during": during,
    "steps-per-second-after": ((steps - end.resumedAtStep) * 1000) / Math.max(1, end.ms),
  };
  if (args.includes("--json")) process.stdout.write(JSON.stringify(report) + "\n");
  else process.stdout.write(`${report.program}: moved at step ${report["paused-at-step"]} of ${steps}, downtime ${report["downtime-ms"].toFixed(0)} ms, ${(report.bytes / 1e6).toFixed(1)} MB in ${report.rounds} rounds; ${report["steps-per-second-before"].toFixed(0)} steps/s before, ${report["steps-per-second-during"].toFixed(0)} during, ${report["steps-per-second-after"].toFixed(0)} after; result ${report.moved} ${report.equal ? "equals" : "DIFFERS FROM"} the unmoved run's ${expected}\n`);
  process.exitCode = report.equal ? 0 : 1;
}
