// `npm run bench -- listener`: one listener serving migration after migration of a large guest,
// as a long-lived destination does; its resident memory and sockets must stay flat. Source and
// destination run in this process, so the RSS includes the source's guest (constant).
import { Listener } from "../src/migration/listener.js";
import { Source } from "../src/migration/source.js";
import { Region } from "../src/memory/region.js";
import { fillPage, mixedClass } from "../src/memory/content.js";
import { stopCopy } from "../src/policy/stop-copy.js";
import { type Row, progress } from "./report.js";

export interface ListenerBenchOptions {
  bytes: number;
  migrations: number;
}

export const listenerDefaults: ListenerBenchOptions = { bytes: 64 << 20, migrations: 1000 };
export const listenerQuick: ListenerBenchOptions = { bytes: 16 << 20, migrations: 100 };

const rssMiB = () => process.memoryUsage().rss / 2 ** 20;
const sockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;

export async function runListener(o: ListenerBenchOptions): Promise<Row[]> {
  const pages = o.bytes / 4096;
  const region = Region.create({ pageCount: pages });
  for (let p = 0; p < pages; p++) fillPage(region.pages(p), mixedClass(p, 3), p, 3);
  const listener = new Listener({ secret: "s" });
  const port = await listener.listen(0);
  const samples: Array<{ after: number; rss: number; sockets: number }> = [];
  const start = performance.now();
  const warmup = Math.min(10, o.migrations);
  for (let i = 1; i <= o.migrations; i++) {
    const received = listener.next();
    await new Source([region], { host: "127.0.0.1", port, secret: "s", policy: stopCopy() }).migrate();
    (await received).release();
    if (i === warmup || i % Math.max(1, Math.floor(o.migrations / 10)) === 0) {
      samples.push({ after: i, rss: rssMiB(), sockets: sockets() });
      progress(`${i} migrations of ${o.bytes >> 20} MiB: RSS ${rssMiB().toFixed(0)} MiB, ${sockets()} TCP sockets open`);
    }
  }
  const seconds = (performance.now() - start) / 1000;
  await listener.close();
  const first = samples[0];
  const last = samples.at(-1)!;
  const guestMiB = o.bytes / 2 ** 20;
  return [
    {
      suite: "listener", name: `RSS growth from migration ${first.after} to ${last.after}, ${guestMiB} MiB guests`, value: last.rss - first.rss, unit: "MiB",
      target: { max: guestMiB }, note: `RSS ${samples.map((s) => `${s.after}: ${s.rss.toFixed(0)}`).join(", ")} MiB; ${(o.migrations / seconds).toFixed(1)} migrations/s`,
    },
    { suite: "listener", name: "TCP sockets open after the last migration", value: last.sockets, unit: "", target: { max: 1 }, note: "the listening socket only" },
  ];
}
