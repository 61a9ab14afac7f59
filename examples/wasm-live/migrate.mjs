#!/usr/bin/env node
// Real WebAssembly programs from npm, which nobody here wrote, migrated live between two processes
// while they run, then continued at the destination from their migrated memory; each result is
// checked against a run that never moved. Two programs: a Lua 5.4 VM (wasmoon) and the QuickJS
// JavaScript engine (quickjs-emscripten), each running the same numeric program in slices.
//
//   node examples/wasm-live/migrate.mjs [--program lua|quickjs] [--policy NAME] [--steps N] [--json]
//
// Neither marks a page dirty: the source copies the module's memory into a pagewire region at each
// dirty sync and finds what changed by hash (trackByHash). What else the destination needs: the
// interpreter's state pointer (lua_State, JSContext), sent as the device state, and the same module
// instantiated the same way, whose WebAssembly globals (the stack pointer, back at its base
// between calls) and function table are then the same as the source's.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { LuaFactory } from "wasmoon";
import { newQuickJSWASMModule } from "quickjs-emscripten";
import { Region, Source, Listener, policyByName, copyReceived } from "pagewire";

const SLICE = 20000;

/** Each program: start one (a fresh module), one slice of work on a state pointer, the result so far. */
const PROGRAMS = {
  lua: {
    name: "Lua 5.4 (wasmoon)",
    async start() {
      const engine = await new LuaFactory().createEngine();
      await engine.doString(`
        state = { i = 0, acc = 0 }
        function step()
          for k = 1, ${SLICE} do
            state.i = state.i + 1
            state.acc = (state.acc * 31 + state.i) % 1000000007
          end
          return state.i
        end`);
      const api = engine.global.lua;
      const number = (L, code) => {
        if (api.luaL_loadstring(L, `return ${code}`) !== 0 || api.lua_pcallk(L, 0, 1, 0, 0, null) !== 0) throw new Error(`Lua failed on ${code}`);
        const value = api.lua_tonumberx(L, -1, null);
        api.lua_settop(L, -2);
        return value;
      };
      return { state: engine.global.address, heap: () => api.module.HEAPU8, run: (L, code) => number(L, code) };
    },
  },
  quickjs: {
    name: "QuickJS (quickjs-emscripten)",
    async start() {
      const QuickJS = await newQuickJSWASMModule();
      const vm = QuickJS.newContext();
      vm.unwrapResult(vm.evalCode(`globalThis.state = { i: 0, acc: 0 };
        globalThis.step = () => { for (let k = 0; k < ${SLICE}; k++) { state.i++; state.acc = (state.acc * 31 + state.i) % 1000000007; } return state.i; }`)).dispose();
      const { ffi, module } = QuickJS;
      const cString = (text) => {
        const bytes = new TextEncoder().encode(text + "\0");
        const at = module._malloc(bytes.length);
        module.HEAPU8.set(bytes, at);
        return { at, length: bytes.length - 1 };
      };
      // QTS_Eval on a raw JSContext pointer: the migrated one, at the destination.
      const run = (ctx, code) => {
        const source = cString(code);
        const file = cString("migrated.js");
        const value = ffi.QTS_Eval(ctx, source.at, source.length, file.at, 0, 0);
        const number = ffi.QTS_GetFloat64(ctx, value);
        ffi.QTS_FreeValuePointer(ctx, value);
        module._free(source.at);
        module._free(file.at);
        return number;
      };
      return { state: vm.ctx.value, heap: () => module.HEAPU8, run };
    },
  },
};

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
const steps = Number(option("--steps", "300"));
const programName = option("--program", "lua");
const policyName = option("--policy", "precopy");
const program = PROGRAMS[programName];
if (!program) throw new Error(`--program ${programName}: choose ${Object.keys(PROGRAMS).join(" or ")}`);
const step = (p, state) => p.run(state, "step()");
const result = (p, state) => p.run(state, "state.acc");

if (args[0] === "destination") {
  // The destination: receive the memory, start the same module, put the memory in, go on.
  const listener = new Listener({
    hooks: {
      resume: async (deviceState, regions) => {
        const { state, heapBytes, done } = JSON.parse(new TextDecoder().decode(deviceState));
        const vm = await program.start();
        if (vm.heap().length !== heapBytes) throw new Error(`the memory grew on the source (${heapBytes} bytes), this example does not grow it`);
        copyReceived(regions, vm.heap());
        const resumedAt = performance.now();
        let at = done;
        while (at < steps * SLICE) at = step(vm, state);
        process.send({ type: "finished", result: result(vm, state), resumedAtStep: done / SLICE, ms: performance.now() - resumedAt });
      },
    },
  });
  const port = await listener.listen(0);
  process.send({ type: "listening", port });
  await listener.next();
} else {
  // The reference: the same program, never moved.
  const alone = await program.start();
  for (let s = 0; s < steps; s++) step(alone, alone.state);
  const expected = result(alone, alone.state);

  const destination = fork(fileURLToPath(import.meta.url), ["destination", "--program", programName, "--steps", String(steps)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const message = (type) => new Promise((resolve) => destination.on("message", (m) => m.type === type && resolve(m)));
  const { port } = await message("listening");
  const finished = message("finished");

  const vm = await program.start();
  const heapBytes = vm.heap().length;
  const region = Region.create({ pageCount: heapBytes / 4096, hashTracking: true });
  const copyIn = () => region.bytes.set(vm.heap(), region.layout.guest);
  // The program runs in slices on this thread while the migration's rounds go on between them.
  let running = true;
  let done = 0;
  let slices = 0;
  const loop = (async () => {
    while (running && done < steps * SLICE) {
      done = step(vm, vm.state);
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
    host: "127.0.0.1", port, policy: policyByName(policyName), trackByHash: true,
    hooks: {
      beforeSync: copyIn,
      pause: async () => {
        running = false;
        await loop;
      },
      deviceState: () => new TextEncoder().encode(JSON.stringify({ state: vm.state, heapBytes, done })),
    },
  }).migrate();
  const during = ((slices - before) * 1000) / (performance.now() - startedAt);
  const end = await finished;
  destination.kill();
  const report = {
    program: program.name, policy: policyName, steps, expected, moved: end.result, equal: end.result === expected,
    "paused-at-step": end.resumedAtStep, "downtime-ms": stats.downtime, "total-ms": stats["total-time"], bytes: stats.transferred, rounds: stats.rounds.length,
    "steps-per-second-before": rateBefore, "steps-per-second-during": during, "steps-per-second-after": ((steps - end.resumedAtStep) * 1000) / Math.max(1, end.ms),
  };
  if (args.includes("--json")) process.stdout.write(JSON.stringify(report) + "\n");
  else process.stdout.write(`${report.program}: moved at step ${report["paused-at-step"]} of ${steps}, downtime ${report["downtime-ms"].toFixed(0)} ms, ${(report.bytes / 1e6).toFixed(1)} MB in ${report.rounds} rounds; ${report["steps-per-second-before"].toFixed(0)} steps/s before, ${report["steps-per-second-during"].toFixed(0)} during, ${report["steps-per-second-after"].toFixed(0)} after; result ${report.moved} ${report.equal ? "equals" : "DIFFERS FROM"} the unmoved run's ${expected}\n`);
  process.exitCode = report.equal ? 0 : 1;
}
