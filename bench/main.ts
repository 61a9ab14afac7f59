// `pagewire bench SUITE... [--json] [--quick]` (or `npm run bench -- ...`): runs benchmark suites
// and prints a table, or with --json one JSON document: the machine, then every figure with its
// id, parameters, samples and their summary, and whether it met its target. Progress goes to stderr.
import { execFileSync } from "node:child_process";
import { cpus, totalmem, loadavg, platform, release, availableParallelism } from "node:os";
import { printTable, rowJson, type Row } from "./report.js";
import { runImage } from "./image.js";
import { runSoak, soakDefaults, soakQuick } from "./soak.js";
import { VERSION } from "../src/cli/version.js";
import { runCore, coreDefaults, coreQuick } from "./core.js";
import { runE2e, e2eDefaults, e2eQuick } from "./e2e.js";
import { runWorkloads, workloadDefaults, workloadQuick } from "./workloads.js";
import { runPolicies, policyDefaults, policyQuick, LINKS } from "./policies.js";
import { runListener, listenerDefaults, listenerQuick } from "./listener.js";
import { runCheckpoint, checkpointDefaults, checkpointQuick } from "./checkpoint.js";
import { runJob, jobDefaults, jobQuick } from "./job.js";
import { runPeers, peersDefaults, peersQuick } from "./peers.js";
import { runEmbed, embedDefaults, embedQuick } from "./embed.js";
import { pathToFileURL } from "node:url";
import { parseSize } from "../src/cli/units.js";

/**
 * --quick, and for the policies suite --size SIZE, --runs N, --link NAME and --policies A,B,...
 * (the full run takes hours at 1 GiB).
 */
interface BenchOptions {
  quick: boolean;
  size?: number;
  runs?: number;
  link?: string;
  policies?: string[];
  image?: string;
}

const HELP = `pagewire bench SUITE... [options]     benchmarks, each against a baseline run in the same run
  suites: core (scans, bitmaps, LZ4 against lz4-wasm-nodejs), e2e (migrations against raw TCP),
          workloads, policies (the papers' policies on the kernels), listener (1,000 migrations
          into one destination), soak (1,000 migrations with faults injected), image (the codec
          and migrations on --image FILE), checkpoint (checkpoints and restores against dd), job
          (N ranks migrated with one coordinated pause, N = 1, 2, 4), peers (QEMU
          migrating the same 1 GiB image in the same run, when installed), embed (Lua and
          QuickJS from npm migrated live: what it costs them)
  --image FILE   a memory image or page corpus of your own (up to 1 GiB), read as 4 KiB pages;
                 compared with lz4 -b1 -B4096 when the lz4 command exists
  --runs N       runs per figure, after a warm-up run (core, image; policies: runs per cell)
  --size SIZE    guest size (policies, listener)
  --quick        small sizes, for a first look
  --json         one JSON document on stdout (progress stays on stderr)`;

/** What the figures were measured on: they vary with it, so every report carries it. */
function machine(): Record<string, unknown> {
  let commit: string | undefined;
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], cwd: new URL(".", import.meta.url) }).trim();
  } catch {
    commit = undefined; // not a clone: an installed package
  }
  return {
    cpu: cpus()[0]?.model, cores: availableParallelism(), memory: totalmem(), load: loadavg(),
    os: `${platform()} ${release()}`, node: process.version, pagewire: VERSION, commit,
  };
}

const SUITES: Record<string, (o: BenchOptions) => Row[] | Promise<Row[]>> = {
  core: (o) => runCore(o.quick ? coreQuick : coreDefaults),
  e2e: (o) => runE2e(o.quick ? e2eQuick : e2eDefaults),
  workloads: (o) => runWorkloads(o.quick ? workloadQuick : workloadDefaults),
  image: (o) => {
    if (!o.image) throw new Error("the image suite needs --image FILE");
    return runImage({ file: o.image, runs: o.runs ?? (o.quick ? 1 : 3) });
  },
  checkpoint: (o) => runCheckpoint({ ...(o.quick ? checkpointQuick : checkpointDefaults), ...(o.size ? { bytes: o.size } : {}), ...(o.runs ? { repeats: o.runs } : {}) }),
  embed: (o) => runEmbed({ ...(o.quick ? embedQuick : embedDefaults), ...(o.runs ? { repeats: o.runs } : {}) }),
  peers: (o) => runPeers({ ...(o.quick ? peersQuick : peersDefaults), ...(o.runs ? { repeats: o.runs } : {}) }),
  job: (o) => runJob({ ...(o.quick ? jobQuick : jobDefaults), ...(o.size ? { bytes: o.size } : {}) }),
  soak: (o) => runSoak({ ...(o.quick ? soakQuick : soakDefaults), ...(o.runs ? { migrations: o.runs } : {}), ...(o.size ? { bytes: o.size } : {}) }),
  listener: (o) => runListener({ ...(o.quick ? listenerQuick : listenerDefaults), ...(o.size ? { bytes: o.size } : {}), ...(o.runs ? { migrations: o.runs } : {}) }),
  policies: (o) => {
    const base = o.quick ? policyQuick : policyDefaults;
    const links = o.link ? LINKS.filter((l) => (l.bandwidth ?? "uncapped") === o.link) : base.links;
    if (links.length === 0) throw new Error(`unknown link ${o.link}: say uncapped or 1gbit`);
    const unknown = o.policies?.filter((p) => !base.policies.includes(p)) ?? [];
    if (unknown.length > 0) throw new Error(`unknown policy ${unknown.join(", ")}: say some of ${base.policies.join(", ")}`);
    return runPolicies({ ...base, bytes: o.size ?? base.bytes, runs: o.runs ?? base.runs, links, policies: o.policies ?? base.policies });
  },
};

function valueOf(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function runBench(argv: string[]): Promise<number> {
  const json = argv.includes("--json");
  const quick = argv.includes("--quick");
  const size = valueOf(argv, "--size");
  const runs = valueOf(argv, "--runs");
  const policies = valueOf(argv, "--policies")?.split(",");
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(HELP + "\n");
    return 0;
  }
  const image = valueOf(argv, "--image");
  const options: BenchOptions = { quick, size: size ? parseSize(size) : undefined, runs: runs ? Number(runs) : undefined, link: valueOf(argv, "--link"), policies, image };
  const names = argv.filter((a, i) => !a.startsWith("--") && !["--size", "--runs", "--link", "--policies", "--image"].includes(argv[i - 1]));
  if (image && names.length === 0) names.push("image");
  const unknown = names.filter((n) => !(n in SUITES));
  if (names.length === 0 || unknown.length > 0) {
    process.stderr.write(
      `${unknown.length ? `unknown suite: ${unknown.join(", ")}\n` : ""}usage: pagewire bench SUITE... [--json] [--quick] [--size SIZE] [--runs N] [--link uncapped|1gbit] [--policies A,B,...]\nsuites: ${Object.keys(SUITES).join(", ")}\n`,
    );
    return 2;
  }
  const rows: Row[] = [];
  for (const name of names) {
    process.stderr.write(`${name}:\n`);
    rows.push(...(await SUITES[name](options)));
  }
  const meta = { date: new Date().toISOString(), machine: machine(), options };
  process.stdout.write(json ? JSON.stringify({ ...meta, rows: rows.map(rowJson) }, null, 2) + "\n" : printTable(rows) + "\n");
  return 0;
}

// Run as a script (npm run bench), or imported by `pagewire bench`.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) process.exitCode = await runBench(process.argv.slice(2));
