// A workload's device state is wire input: every field is checked against the guest before a
// thread runs on it, and a destination refuses a bad one before done, so the source runs on. A
// workload resumed into a listener's fixed memory holds it until the workload stops.
import { describe, it, expect } from "vitest";
import { Region } from "../src/memory/region.js";
import { WORKLOAD_STATE_BYTES } from "../src/memory/layout.js";
import { Source } from "../src/migration/source.js";
import { Listener } from "../src/migration/listener.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { Workload } from "../src/workload/workload.js";
import { KERNELS } from "../src/workload/kernels.js";
import { startDestination } from "./peers.js";

const PAGES = 1024; // 4 MiB guests

/** A real state of `kernel` after a few iterations, from a workload that then stopped. */
async function stateOf(kernel: string): Promise<Uint8Array> {
  const region = Region.create({ pageCount: PAGES });
  const workload = Workload.start(region, kernel, { stopAt: 2 });
  await workload.done;
  return workload.deviceState();
}

/** `state` with the u32 at byte `offset` of the kernel's state struct set to `value`. */
function withField(state: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = state.slice();
  new DataView(copy.buffer).setUint32(copy.length - WORKLOAD_STATE_BYTES + offset, value, true);
  return copy;
}

/** `state` with its JSON header changed by `edit`. */
function withHeader(state: Uint8Array, edit: (h: Record<string, unknown>) => void): Uint8Array {
  const length = new DataView(state.buffer, state.byteOffset).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(state.subarray(4, 4 + length)));
  edit(header);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.length + WORKLOAD_STATE_BYTES);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  out.set(state.subarray(state.length - WORKLOAD_STATE_BYTES), 4 + json.length);
  return out;
}

// For each kernel, a field a hostile state would set to reach outside the guest (byte offset in the state struct).
const CRAFTED: Array<[kernel: string, offset: number, value: number, field: string]> = [
  ["stencil", 8, 4000, "n"],
  ["stencil", 4, 1 << 20, "plane"],
  ["cg", 12, 1 << 30, "rows"],
  ["cg", 8, 1 << 30, "cursor"],
  ["cg", 4, 7, "phase"],
  ["fft", 12, 20, "log2 N"],
  ["fft", 8, 1 << 20, "index"],
  ["sort", 20, 1 << 30, "keys"],
  ["sort", 16, 1 << 30, "cursor"],
  ["churn", 16, 1 << 20, "slots"],
  ["churn", 20, 1 << 20, "first data page"],
  ["churn", 12, 9, "mode"],
];

describe("a workload's device state, checked like wire input", () => {
  it("accepts every kernel's real state on a guest of its size", async () => {
    for (const kernel of Object.keys(KERNELS)) {
      const state = await stateOf(kernel);
      expect(Workload.check(Region.create({ pageCount: PAGES }), state).kernel).toBe(kernel);
    }
  });

  for (const [kernel, offset, value, field] of CRAFTED) {
    it(`refuses a ${kernel} state whose ${field} is ${value}, naming the field`, async () => {
      const state = withField(await stateOf(kernel), offset, value);
      expect(() => Workload.check(Region.create({ pageCount: PAGES }), state)).toThrow(new RegExp(`its ${field} is out of range`));
    });
  }

  it("refuses a real state on a guest of another size, an unknown free mode, a bad count, and a header that is not JSON", async () => {
    const state = await stateOf("stencil");
    expect(() => Workload.check(Region.create({ pageCount: PAGES * 4 }), state)).toThrow(/does not fit this guest of 16777216 bytes: its n is out of range/);
    expect(() => Workload.check(Region.create({ pageCount: PAGES }), withHeader(state, (h) => (h.freeMode = "shred")))).toThrow(/unknown free mode "shred"/);
    expect(() => Workload.check(Region.create({ pageCount: PAGES }), withHeader(state, (h) => (h.iterations = -1)))).toThrow(/iteration count -1/);
    const garbled = state.slice();
    garbled[4] = 0x7b + 1;
    expect(() => Workload.check(Region.create({ pageCount: PAGES }), garbled)).toThrow(/not JSON/);
  });

  it("a destination refuses a crafted state before done (reason state): the source's guest resumes there", async () => {
    const region = Region.create({ pageCount: PAGES });
    const workload = Workload.start(region, "stencil");
    await workload.until(1);
    const listener = new Listener({ hooks: { checkDeviceState: (state, regions) => void Workload.check(regions[0], state) } });
    const port = await listener.listen(0);
    try {
      const failed = listener.next();
      failed.catch(() => undefined);
      let resumed = 0;
      const source = new Source([region], {
        host: "127.0.0.1", port, policy: stopCopy(),
        hooks: { pause: () => workload.pause(), resume: () => (resumed++, workload.resume()), deviceState: () => withField(workload.deviceState(), 8, 4000) },
      });
      await expect(source.migrate()).rejects.toMatchObject({ code: "ESTATE", reason: "state", message: expect.stringMatching(/its n is out of range/) });
      await expect(failed).rejects.toMatchObject({ code: "ESTATE" });
      expect(resumed).toBe(1);
      const before = workload.iterations;
      await workload.until(before + 1); // still running here
    } finally {
      await workload.stop();
      await listener.close();
    }
  });
});

describe("a workload resumed into a listener's fixed memory", () => {
  it("holds it (other offers are busy) until it stops after --run-seconds; then the next migration takes it", async () => {
    const destination = await startDestination("--size", String(PAGES * 4096), "--run-seconds", "1");
    try {
      const region = Region.create({ pageCount: PAGES });
      const workload = Workload.start(region, "ep");
      await workload.until(1);
      const completed = destination.next("completed");
      await new Source([region], { host: "127.0.0.1", port: destination.port, policy: stopCopy(), hooks: { pause: () => workload.pause(), resume: () => workload.resume(), deviceState: () => workload.deviceState() } }).migrate();
      await workload.stop();
      await completed;
      const plain = () => new Source([Region.create({ pageCount: PAGES })], { host: "127.0.0.1", port: destination.port, policy: stopCopy() }).migrate();
      await expect(plain()).rejects.toMatchObject({ reason: "busy" });
      await destination.next("workload"); // it ran its second and stopped
      const next = destination.next("completed");
      expect((await plain()).status).toBe("completed");
      await next;
    } finally {
      destination.kill();
    }
  });
});
