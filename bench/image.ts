// `pagewire bench image --image FILE`: the codec and end-to-end figures on a user's own memory
// image or page corpus (a QEMU `migrate "exec:cat > FILE"` dump, `virsh dump --memory-only`, a
// WebAssembly memory snapshot: any file, read as 4 KiB pages), against lz4-wasm-nodejs when it is
// installed and the native `lz4 -b1 -B4096` when the lz4 command exists, in the same run.
import { readFileSync, statSync, existsSync } from "node:fs";
import { execFileSync, spawnSync } from "node:child_process";
import { basename } from "node:path";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { migration } from "./e2e.js";
import { type Row, timings, summarize, progress } from "./report.js";

const PAGE = 4096;
/** The codec keeps the image and a block per page in one region, under the 4 GiB of one WebAssembly memory. */
const MAX_IMAGE = 2 ** 30;

export interface ImageBenchOptions {
  file: string;
  runs: number;
}

const mbps = (bytes: number, ms: number) => bytes / ms / 1e3;

/** `lz4 -b1 -B4096 FILE`: liblz4's own benchmark on 4 KiB blocks, or undefined without the command. */
function nativeLz4(file: string): { compress: number; decompress: number; ratio: number; version: string } | undefined {
  if (!["/usr/bin/lz4", "/usr/local/bin/lz4"].some(existsSync)) return undefined;
  // lz4 writes its benchmark to stderr, each result line rewritten with carriage returns.
  const run = spawnSync("lz4", ["-b1", "-B4096", file], { encoding: "utf8" });
  const out = `${run.stdout}${run.stderr}`;
  const all = [...out.matchAll(/(\d+) ->\s+(\d+) \(([\d.]+)\),\s*([\d.]+) MB\/s ,\s*([\d.]+) MB\/s/g)];
  const last = all.at(-1);
  if (!last) return undefined;
  const version = /v(\d+\.\d+\.\d+)/.exec(execFileSync("lz4", ["--version"], { encoding: "utf8" }))?.[1] ?? "?";
  return { ratio: Number(last[3]), compress: Number(last[4]), decompress: Number(last[5]), version };
}

async function lz4WasmNodejs(): Promise<{ compress(b: Uint8Array): Uint8Array; decompress(b: Uint8Array): Uint8Array } | undefined> {
  try {
    return (await import("lz4-wasm-nodejs")) as never;
  } catch {
    return undefined; // a dev dependency: absent where the package was installed from npm
  }
}

export async function runImage(o: ImageBenchOptions): Promise<Row[]> {
  const size = statSync(o.file).size;
  if (size === 0 || size > MAX_IMAGE) throw new Error(`--image ${o.file}: ${size} bytes; give a file of 1 byte to 1 GiB`);
  const pages = Math.ceil(size / PAGE);
  const bytes = pages * PAGE;
  const params = { file: basename(o.file), bytes: size, pages };
  progress(`image ${o.file}: ${pages} pages of 4 KiB`);
  const image = readFileSync(o.file);
  // The codec's region: the image's pages, then room for every page's block, then one page to decode into.
  const codec = Region.create({ pageCount: 2 * pages + 1, batchPages: 1, ioBuffers: 1 });
  codec.prefault();
  codec.bytes.set(image, codec.layout.guest);
  const core = new Core(codec);
  const zero = core.countZeroPages(0, pages);
  const rows: Row[] = [{ suite: "image", id: "image.zero-pages", params, name: "zero pages", value: (100 * zero) / pages, unit: "%", note: `${zero} of ${pages}` }];

  progress("LZ4 per page (each page alone, as the engine encodes), ours");
  const blocks = codec.pageAddress(pages);
  const target = codec.pageAddress(2 * pages);
  const ends = new Float64Array(pages + 1);
  const compressRuns = timings(o.runs, () => {
    let at = blocks;
    for (let p = 0; p < pages; p++) {
      ends[p] = at;
      at += core.compressBlock(codec.pageAddress(p), PAGE, at, PAGE - 1); // 0: does not shrink, sent whole
    }
    ends[pages] = at;
  });
  let packed = 0;
  for (let p = 0; p < pages; p++) packed += ends[p + 1] - ends[p] || PAGE;
  const decompressRuns = timings(o.runs, () => {
    for (let p = 0; p < pages; p++) {
      const length = ends[p + 1] - ends[p];
      if (length > 0 && core.decompressBlock(ends[p], length, target, PAGE) !== PAGE) throw new Error(`page ${p} did not decode`);
    }
  });
  const theirs = await lz4WasmNodejs();
  let wasmBaseline: { compress: number; decompress: number; ratio: number } | undefined;
  if (theirs) {
    progress("LZ4 per page, lz4-wasm-nodejs");
    const copies = Array.from({ length: pages }, (_, p) => codec.pages(p).slice());
    let theirBlocks: Uint8Array[] = [];
    const c = summarize(timings(o.runs, () => (theirBlocks = copies.map((page) => theirs.compress(page))))).median;
    const d = summarize(timings(o.runs, () => theirBlocks.forEach((b) => theirs.decompress(b)))).median;
    const theirBytes = theirBlocks.reduce((sum, b) => sum + Math.min(PAGE, b.length - 4), 0);
    wasmBaseline = { compress: mbps(bytes, c), decompress: mbps(bytes, d), ratio: bytes / theirBytes };
  }
  progress("lz4 -b1 -B4096 (native liblz4), if installed");
  const native = nativeLz4(o.file);
  const base = (kind: "compress" | "decompress" | "ratio") =>
    native ? { name: `lz4 ${native.version} -b1 -B4096`, value: native[kind] } : wasmBaseline ? { name: "lz4-wasm-nodejs", value: wasmBaseline[kind] } : undefined;
  const also = (kind: "compress" | "decompress" | "ratio") => (native && wasmBaseline ? `lz4-wasm-nodejs: ${wasmBaseline[kind].toFixed(kind === "ratio" ? 3 : 0)}` : undefined);
  rows.push(
    { suite: "image", id: "image.lz4-compress", params, name: "lz4 compress per 4 KiB page", value: mbps(bytes, summarize(compressRuns).median), unit: "MB/s", samples: compressRuns.map((ms) => mbps(bytes, ms)), baseline: base("compress"), note: also("compress") },
    {
      suite: "image", id: "image.lz4-decompress", params, name: "lz4 decompress per 4 KiB page", value: mbps(bytes, summarize(decompressRuns).median), unit: "MB/s", samples: decompressRuns.map((ms) => mbps(bytes, ms)), baseline: base("decompress"),
      note: [also("decompress"), "a page that does not shrink travels whole and is not decompressed here, where lz4 -b decodes every block"].filter(Boolean).join("; "),
    },
    { suite: "image", id: "image.lz4-ratio", params, name: "lz4 ratio per 4 KiB page", value: bytes / packed, unit: "x", baseline: base("ratio"), note: also("ratio") },
  );

  const region = Region.create({ pageCount: pages });
  region.bytes.set(image, region.layout.guest);
  for (const compress of [false, true]) {
    progress(`stop-and-copy of the image over loopback, ${compress ? "LZ4" : "raw"}, ${o.runs} runs`);
    const runs = [];
    for (let i = 0; i < o.runs; i++) runs.push(await migration({ region, policy: stopCopy(), compress }));
    const totals = runs.map((s) => s["total-time"]);
    rows.push({
      suite: "image", id: "image.stop-copy", params: { ...params, compress }, name: `stop-and-copy over loopback, ${compress ? "lz4" : "raw"}: total time`, value: summarize(totals).median, unit: "ms", samples: totals,
      note: `${(runs[0].transferred / 1e6).toFixed(1)} MB on the wire for ${(bytes / 1e6).toFixed(1)} MB of memory; destination pre-faulted`,
    });
  }
  return rows;
}
