// The round sender through its seam: a recording channel stands in for TCP, so the test controls
// exactly when pages are written during a round, and what it expects is exact.
import { describe, it, expect } from "vitest";
import { Region } from "../src/memory/region.js";
import { Core } from "../src/core/core.js";
import type { PageBatch, PageChannel } from "../src/transport/page-channel.js";
import type { RoundEnd } from "../src/wire/messages.js";
import { RoundSender } from "../src/migration/round-sender.js";
import { FailureLatch } from "../src/migration/failure.js";
import { SourceCounters } from "../src/migration/stats.js";
import { fillPage } from "../src/memory/content.js";

/** A channel that records which pages it carried, and can act (as a guest would) on the first batch of a round. */
class RecordingChannel implements PageChannel {
  sent = 0;
  readonly backlog = 0;
  readonly pages = new Map<number, number[]>();
  readonly ends: RoundEnd[] = [];
  onFirstBatch: (() => void) | undefined;

  private carried(round: number, pages: number[]): void {
    const first = this.onFirstBatch;
    this.onFirstBatch = undefined;
    first?.();
    this.pages.set(round, [...(this.pages.get(round) ?? []), ...pages]);
  }

  async sendBatch(b: PageBatch): Promise<void> {
    const pages: number[] = [];
    for (let r = 0; r < b.runs.length; r += 2) {
      for (let k = 0; k < b.runs[r + 1]; k++) pages.push(b.runs[r] + k);
      this.sent += b.runs[r + 1] * b.pageSize;
    }
    const view = new DataView(b.records.buffer, b.records.byteOffset, b.records.byteLength);
    for (let at = 0; at < b.records.length; at += 8 + (view.getUint32(at + 4, true) & 0xffffff)) pages.push(view.getUint32(at, true));
    this.sent += b.records.length;
    this.carried(b.round, pages);
  }

  async endRound(end: RoundEnd): Promise<void> {
    this.ends.push(end);
  }
}

function setup() {
  const region = Region.create({ pageCount: 512, batchPages: 64 });
  for (let p = 0; p < 512; p++) fillPage(region.pages(p), p % 4 === 0 ? "zero" : "random", p);
  const core = new Core(region);
  core.setEncoding({ rawRuns: true });
  const channel = new RecordingChannel();
  const counters = new SourceCounters();
  const sender = new RoundSender([core], [channel], new FailureLatch(), counters);
  return { region, core, channel, counters, sender };
}

describe("round sender", () => {
  it("sends every page once in round 1, leaving out fresh zero pages, and ends the round with the count", async () => {
    const { channel, sender } = setup();
    sender.sync();
    const report = await sender.sendRound(1, {}, false, 0);
    const sent = channel.pages.get(1)!;
    expect(sent.length).toBe(384); // 128 zero pages never sent need no record
    expect(new Set(sent).size).toBe(384);
    expect(sent.every((p) => p % 4 !== 0)).toBe(true);
    expect(channel.ends).toEqual([{ round: 1, pages: 384, final: false }]);
    expect(report).toMatchObject({ round: 1, phase: "live", "dirty-pages": 512, pages: 384 });
    expect(sender.unsentPages).toBe(0);
  });

  it("skips exactly the pages dirtied again during a round (Xen's skip), and sends them in the next", async () => {
    const { region, channel, counters, sender } = setup();
    sender.sync();
    await sender.sendRound(1, {}, false, 0);
    region.markDirty(0, 512);
    const { owed } = sender.sync();
    expect(owed).toBe(512);
    // A writer rewrites pages 300..309 while the round's first batch leaves: they are behind the scan.
    channel.onFirstBatch = () => region.markDirty(300, 10);
    await sender.sendRound(2, { skipRedirtied: true }, false, owed);
    expect(counters.skippedPages).toBe(10);
    const round2 = channel.pages.get(2)!;
    expect(round2.length).toBe(502);
    expect(round2.filter((p) => p >= 300 && p < 310)).toEqual([]);
    const next = sender.sync();
    expect(next.owed).toBe(10);
    await sender.sendRound(3, {}, true, next.owed);
    expect(channel.pages.get(3)!.sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => 300 + i));
    expect(channel.ends.at(-1)).toEqual({ round: 3, pages: 10, final: true });
  });

  it("takes a plan's share of never-sent pages per round (MPLM), interleaved with the dirty ones", async () => {
    const { region, channel, sender } = setup();
    sender.sync();
    await sender.sendRound(1, { freshPages: 128 }, false, 0);
    expect(sender.unsentPages).toBe(384);
    region.markDirty(0, 512); // only the 128 sent can be owed
    const { owed } = sender.sync();
    expect(owed).toBe(128);
    await sender.sendRound(2, { freshPages: 128 }, false, owed);
    expect(sender.unsentPages).toBe(256);
    const round2 = channel.pages.get(2)!;
    expect(round2.filter((p) => p < 128).length).toBe(128); // re-sent, zero pages as records now
    expect(round2.filter((p) => p >= 128 && p < 256).length).toBe(96); // fresh, zero pages left out
  });
});
