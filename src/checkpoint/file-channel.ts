// Where a checkpoint's rounds put their pages: a file with every page at a fixed offset (as QEMU's
// mapped-ram), so a page sent again overwrites its older copy in place and the file never grows
// past the guest. The round sender writes through PageChannel as it would to a connection; the
// pages go from guest memory to the file with no copy.
import type { FileHandle } from "node:fs/promises";
import type { PageBatch, PageChannel } from "../transport/page-channel.js";
import type { RoundEnd } from "../wire/messages.js";
import { PagewireError } from "../errors.js";

/** Record types of assembly/records.ts that a checkpoint sees (it encodes neither LZ4 nor deltas). */
const RECORD_ZERO = 1;
const RECORD_RAW = 2;
const RECORD_HEADER_BYTES = 8;
const ZEROS = new Uint8Array(1 << 16);

/** One region's place in the file, and which of its pages the file holds. */
export interface FileRegion {
  pageSize: number;
  pageCount: number;
  dataOffset: number;
  /** Pages written with data, which a zero page must overwrite (a full checkpoint leaves holes for the rest). */
  holdsData: Uint8Array;
  /** A layer's pages: every page it wrote, zero or not (undefined in a full checkpoint). */
  inLayer?: Uint8Array;
}

const setBits = (bits: Uint8Array, first: number, count: number) => {
  for (let p = first; p < first + count; p++) bits[p >>> 3] |= 1 << (p & 7);
};
const hasBit = (bits: Uint8Array, p: number) => (bits[p >>> 3] & (1 << (p & 7))) !== 0;

/** The file several channels write into, at once (the thread pool runs their writes in parallel). */
export class CheckpointFile {
  constructor(
    readonly handle: FileHandle,
    readonly regions: FileRegion[],
  ) {}

  /** Writes `parts` (pages in a row) at page `first` of region `r`. */
  async writePages(r: number, first: number, parts: Uint8Array[]): Promise<number> {
    const region = this.regions[r];
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    await this.handle.writev(parts, region.dataOffset + first * region.pageSize);
    setBits(region.holdsData, first, bytes / region.pageSize);
    if (region.inLayer) setBits(region.inLayer, first, bytes / region.pageSize);
    return bytes;
  }

  /** Zero pages: a hole stays a hole; a page that held data (or belongs to a layer) is written as zeros. */
  async zeroPage(r: number, page: number): Promise<number> {
    const region = this.regions[r];
    if (!region.inLayer && !hasBit(region.holdsData, page)) return 0;
    await this.handle.write(ZEROS, 0, region.pageSize, region.dataOffset + page * region.pageSize);
    region.holdsData[page >>> 3] &= ~(1 << (page & 7));
    if (region.inLayer) setBits(region.inLayer, page, 1);
    return region.pageSize;
  }
}

export class FileChannel implements PageChannel {
  backlog = 0;
  sent = 0;
  /** Writes not yet done: a round ends once they are (as a connection's round-end follows its frames). */
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly file: CheckpointFile) {}

  private track(bytes: number, write: () => Promise<number>): Promise<void> {
    this.backlog += bytes;
    const done = write().then(
      (written) => {
        this.sent += written;
      },
    ).finally(() => {
      this.backlog -= bytes;
      this.pending.delete(done);
    });
    this.pending.add(done);
    return done;
  }

  /** Each run of raw pages in one write at its place in the file, then the records. */
  async sendBatch(b: PageBatch): Promise<void> {
    const writes: Promise<void>[] = [];
    for (let r = 0; r < b.runs.length; r += 2) {
      const pages = b.guest.subarray(b.runs[r] * b.pageSize, (b.runs[r] + b.runs[r + 1]) * b.pageSize);
      writes.push(this.track(pages.length, () => this.file.writePages(b.region, b.runs[r], [pages])));
    }
    if (b.records.length > 0) writes.push(this.sendRecords(b.region, b.records));
    await Promise.all(writes);
  }

  /** Records of zero and raw pages: consecutive raw pages go in one write. */
  private sendRecords(region: number, records: Uint8Array): Promise<void> {
    return this.track(records.length, async () => {
      const view = new DataView(records.buffer, records.byteOffset, records.byteLength);
      const writes: Array<Promise<number>> = [];
      let run: { first: number; parts: Uint8Array[] } | undefined;
      const flush = () => {
        if (run) writes.push(this.file.writePages(region, run.first, run.parts));
        run = undefined;
      };
      for (let at = 0; at < records.length; ) {
        const page = view.getUint32(at, true);
        const typeLength = view.getUint32(at + 4, true);
        const type = typeLength >>> 24;
        const length = typeLength & 0xffffff;
        at += RECORD_HEADER_BYTES;
        if (type === RECORD_ZERO) {
          flush();
          writes.push(this.file.zeroPage(region, page));
        } else if (type === RECORD_RAW) {
          if (run && run.first + run.parts.length !== page) flush();
          run ??= { first: page, parts: [] };
          run.parts.push(records.subarray(at, at + length));
        } else {
          throw new PagewireError("ECHECKPOINT", `a checkpoint got a page record of type ${type}: it writes raw and zero pages only`);
        }
        at += length;
      }
      flush();
      return (await Promise.all(writes)).reduce((a, b) => a + b, 0);
    });
  }

  async endRound(_end: RoundEnd): Promise<void> {
    await Promise.all(this.pending);
  }
}
