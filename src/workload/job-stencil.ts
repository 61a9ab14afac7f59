// The job's distributed kernel: a 1-D heat equation split across ranks (a domain decomposition),
// with a halo exchange with both neighbours and an allreduce of the total heat every iteration, so
// that messages are in flight all the time. Its whole state is in the rank's guest memory (page 0:
// the header; then the two grids), so migrating or checkpointing the memory moves the rank.
import type { Region } from "../memory/region.js";
import type { MessageLayer } from "./mpl.js";

const MAGIC = 0x4a4f4231; // "JOB1"
// Header words (f64), page 0.
const H_MAGIC = 0;
const H_RANK = 1;
const H_RANKS = 2;
const H_CELLS = 3;
const H_ITERATION = 4;
const H_TOTAL = 5;
// Message tags: iteration × 4 + kind.
const TO_LEFT = 0;
const TO_RIGHT = 1;
const REDUCE_UP = 2;
const REDUCE_DOWN = 3;

export interface StencilStatus {
  rank: number;
  ranks: number;
  iteration: number;
  /** The heat summed over every rank at the last iteration: it depends on the whole job's state. */
  total: number;
}

export class StencilRank {
  private readonly header: Float64Array;
  private readonly grids: [Float64Array, Float64Array];
  private readonly cells: number;
  private readonly gridPages: number;

  /** The rank's connections to the others; given once they are known (useLayer), before step(). */
  private mpl: MessageLayer | undefined;

  constructor(readonly region: Region) {
    const { pageSize } = region;
    this.header = new Float64Array(region.memory.buffer, region.layout.guest, 8);
    if (this.header[H_MAGIC] !== MAGIC) throw new Error("the guest memory holds no job rank (initialise it with StencilRank.init)");
    this.cells = this.header[H_CELLS];
    this.gridPages = Math.ceil(((this.cells + 2) * 8) / pageSize);
    const base = region.layout.guest + pageSize;
    this.grids = [
      new Float64Array(region.memory.buffer, base, this.cells + 2),
      new Float64Array(region.memory.buffer, base + this.gridPages * pageSize, this.cells + 2),
    ];
  }

  /** Cells a rank holds in a guest of this many pages: page 0 for the header, then two grids. */
  static cellsFor(region: Region): number {
    const gridPages = Math.floor((region.pageCount - 1) / 2);
    return Math.floor((gridPages * region.pageSize) / 8) - 2;
  }

  /** Writes rank `rank` of `ranks` into fresh guest memory: the header and the first grid. */
  static init(region: Region, rank: number, ranks: number): void {
    const cells = StencilRank.cellsFor(region);
    const header = new Float64Array(region.memory.buffer, region.layout.guest, 8);
    header.set([MAGIC, rank, ranks, cells, 0, 0]);
    const grid = new Float64Array(region.memory.buffer, region.layout.guest + region.pageSize, cells + 2);
    for (let i = 1; i <= cells; i++) grid[i] = 100 * Math.sin(((rank * cells + i) * Math.PI) / (ranks * cells)) + (rank % 2) * 10;
    region.markDirty(0, region.pageCount);
  }

  private get layer(): MessageLayer {
    if (!this.mpl) throw new Error("the rank has no message layer yet (useLayer)");
    return this.mpl;
  }

  /** The message layer to use from now on (after a migration or a restore, attached anew). */
  useLayer(mpl: MessageLayer): void {
    this.mpl = mpl;
  }

  status(): StencilStatus {
    return { rank: this.header[H_RANK], ranks: this.header[H_RANKS], iteration: this.header[H_ITERATION], total: this.header[H_TOTAL] };
  }

  /** One iteration: the halos from both neighbours, a Jacobi sweep into the other grid, the allreduce. */
  async step(): Promise<void> {
    const rank = this.header[H_RANK];
    const ranks = this.header[H_RANKS];
    const iteration = this.header[H_ITERATION];
    const src = this.grids[iteration % 2];
    const dst = this.grids[(iteration + 1) % 2];
    const n = this.cells;
    const tag = iteration * 4;
    const mpl = this.layer;
    if (rank > 0) mpl.send(rank - 1, tag + TO_LEFT, new Uint8Array(Float64Array.of(src[1]).buffer));
    if (rank < ranks - 1) mpl.send(rank + 1, tag + TO_RIGHT, new Uint8Array(Float64Array.of(src[n]).buffer));
    src[0] = rank > 0 ? new Float64Array((await mpl.recv(rank - 1, tag + TO_RIGHT)).slice().buffer)[0] : 0;
    src[n + 1] = rank < ranks - 1 ? new Float64Array((await mpl.recv(rank + 1, tag + TO_LEFT)).slice().buffer)[0] : 0;
    let local = 0;
    for (let i = 1; i <= n; i++) {
      const v = src[i] + 0.25 * (src[i - 1] - 2 * src[i] + src[i + 1]);
      dst[i] = v;
      local += v;
    }
    const total = await this.allreduce(local, tag);
    this.header[H_TOTAL] = total;
    this.header[H_ITERATION] = iteration + 1;
    const first = 1 + ((iteration + 1) % 2) * this.gridPages;
    this.region.markDirty(first, this.gridPages);
    this.region.markDirty(0);
  }

  /** The sum over every rank, in rank order (so every run adds the same way): gathered by rank 0, sent back. */
  private async allreduce(value: number, tag: number): Promise<number> {
    const mpl = this.layer;
    const rank = this.header[H_RANK];
    const ranks = this.header[H_RANKS];
    if (rank !== 0) {
      mpl.send(0, tag + REDUCE_UP, new Uint8Array(Float64Array.of(value).buffer));
      return new Float64Array((await mpl.recv(0, tag + REDUCE_DOWN)).slice().buffer)[0];
    }
    let sum = value;
    for (let r = 1; r < ranks; r++) sum += new Float64Array((await mpl.recv(r, tag + REDUCE_UP)).slice().buffer)[0];
    for (let r = 1; r < ranks; r++) mpl.send(r, tag + REDUCE_DOWN, new Uint8Array(Float64Array.of(sum).buffer));
    return sum;
  }
}
