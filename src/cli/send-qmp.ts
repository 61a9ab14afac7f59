// `pagewire send --qmp unix:PATH`: the source under QMP control, as a QEMU source is scripted:
// parameters and capabilities set before `migrate uri=tcp:HOST:PORT` (or --to, which starts at
// once), query-migrate and MIGRATION events while it runs, migrate_cancel, and `quit` to end the
// process (it stays after the migration, as QEMU does, so that its outcome can be queried).
import { runSource } from "./source-run.js";
import type { SourceSettings } from "./settings.js";
import { QmpServer } from "./qmp.js";
import { SourceControl } from "./qmp-targets.js";
import { printSourceResult } from "./source-output.js";
import { document, errorFields, printDocument } from "./document.js";

export async function sendWithQmp(spec: string, settings: SourceSettings, to: { host: string; port: number } | undefined): Promise<number> {
  let server!: QmpServer;
  let status = 0;
  let quit!: () => void;
  const quitting = new Promise<void>((resolve) => (quit = resolve));
  const control = new SourceControl(
    settings,
    (host, port, s) => {
      runSource(host, port, s, { signal: control.signal, onSource: (source) => control.follow(source) }).then(
        (result) => {
          control.setStatus("completed", { stats: result.stats });
          printSourceResult("send", s, result);
        },
        (error: Error & { code?: string }) => {
          status = 1;
          control.setStatus(control.signal.aborted ? "cancelled" : "failed", { error });
          if (s.json) printDocument(document("send", "failed", errorFields(error)));
          process.stderr.write(`pagewire send: ${error.message}\n`);
        },
      );
    },
    (name, data) => server.event(name, data),
  );
  control.quit = quit;
  server = new QmpServer(control);
  await server.listen(spec);
  process.stderr.write(`QMP on ${server.address}\n`);
  if (to) control.migrate(`tcp:[${to.host}]:${to.port}`);
  await quitting;
  await server.close();
  return status;
}
