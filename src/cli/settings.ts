// Every option of the source commands, read and checked before anything is allocated or started:
// a bad value is refused with the text the user typed and what would be accepted.
import { readFileSync } from "node:fs";
import type { Policy } from "../policy/policy.js";
import type { TlsOptions } from "../transport/tls.js";
import { policyByName, type PolicyParameters } from "../policy/index.js";
import { kernelByName, FREE_MODES, type FreeMode } from "../workload/kernels.js";
import { MAX_CHANNELS } from "../wire/constants.js";
import { PagewireError } from "../errors.js";
import { regionPages, REGION_BYTES } from "./guest.js";
import { parseSize, parseRate, formatBytes } from "./units.js";

export const sourceOptionSpec = {
  size: { type: "string", default: "1g" },
  "page-size": { type: "string", default: "4096" },
  "dirty-rate": { type: "string", default: "0" },
  channels: { type: "string", default: "1" },
  "channel-threads": { type: "boolean", default: false },
  "full-digest": { type: "boolean", default: false },
  policy: { type: "string", default: "precopy" },
  "downtime-limit": { type: "string" },
  "max-rounds": { type: "string" },
  param: { type: "string", multiple: true },
  compress: { type: "boolean", default: false },
  delta: { type: "boolean", default: false },
  "delta-cache": { type: "string", default: "64m" },
  bandwidth: { type: "string" },
  secret: { type: "string" },
  "secret-file": { type: "string" },
  seed: { type: "string", default: "1" },
  json: { type: "boolean", default: false },
  progress: { type: "string" },
  sha256: { type: "boolean", default: false },
  timeout: { type: "string" },
  reconnect: { type: "string", default: "0" },
  workload: { type: "string" },
  "free-mode": { type: "string", default: "dirty" },
  "warmup-seconds": { type: "string", default: "1" },
  help: { type: "boolean", short: "h", default: false },
} as const;

export type Values = Record<string, string | boolean | string[] | undefined>;

export type ProgressMode = "line" | "json" | "none";

export interface SourceSettings {
  size: number;
  pageSize: number;
  dirtyRate: number;
  channels: number;
  /** Channels past 0 on threads of their own. */
  channelThreads: boolean;
  /** Hash all memory for the digest at the pause (SourceOptions.fullDigest). */
  fullDigest: boolean;
  policy: Policy;
  /** The policy's name and parameters as given, to build it again with others (QMP's migrate-set-parameters). */
  policyName: string;
  policyParameters: PolicyParameters;
  compress: boolean;
  delta: boolean;
  deltaCacheBytes: number;
  /** Bytes per second, or undefined for no cap. */
  bandwidth?: number;
  secret: string;
  /** send only: its channels over TLS. */
  tls?: TlsOptions;
  /** send only: the guest is restored from this checkpoint chain. */
  from?: string[];
  seed: number;
  json: boolean;
  progress: ProgressMode;
  sha256: boolean;
  /** Whole migration, ms; undefined: no limit. */
  timeoutMs?: number;
  /** Reconnections allowed after a broken connection. */
  reconnect: number;
  workload?: { kernel: string; freeMode: FreeMode };
  freePageHints: boolean;
  warmupMs: number;
}

const usage = (message: string) => new PagewireError("EOPTION", message);

/** A number the user typed, checked against [min, max] (and integral when asked). */
export function parseNumber(name: string, text: string, o: { min?: number; max?: number; integer?: boolean } = {}): number {
  const value = Number(text.trim());
  const bounds = o.min !== undefined && o.max !== undefined ? ` from ${o.min} to ${o.max}` : o.min !== undefined ? ` of at least ${o.min}` : o.max !== undefined ? ` of at most ${o.max}` : "";
  const range = `${o.integer ? "an integer" : "a number"}${bounds}`;
  if (text.trim() === "" || !Number.isFinite(value) || (o.integer && !Number.isInteger(value)) || (o.min !== undefined && value < o.min) || (o.max !== undefined && value > o.max)) {
    throw usage(`--${name} "${text}": write ${range}`);
  }
  return value;
}

/** The shared secret: --secret, --secret-file (its first line), or the PAGEWIRE_SECRET environment variable; empty means none. */
export function readSecret(v: Values): string {
  if (v.secret !== undefined && v["secret-file"] !== undefined) throw usage("--secret and --secret-file: give one of them");
  if (typeof v["secret-file"] === "string") {
    try {
      return readFileSync(v["secret-file"], "utf8").split(/\r?\n/)[0];
    } catch (error) {
      throw usage(`--secret-file "${v["secret-file"]}": cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  }
  return typeof v.secret === "string" ? v.secret : (process.env.PAGEWIRE_SECRET ?? "");
}

/** The TLS option specs shared by send and listen. */
export const tlsOptionSpec = {
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-ca": { type: "string" },
} as const;

function readPem(v: Values, name: string): Buffer | undefined {
  const path = v[name];
  if (typeof path !== "string") return undefined;
  try {
    return readFileSync(path);
  } catch (error) {
    throw usage(`--${name} "${path}": cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/**
 * --tls-cert, --tls-key and --tls-ca, read: undefined when none is given. A destination needs a
 * certificate and its key; a source needs at least the CA, or a certificate for mutual TLS.
 */
export function readTls(v: Values, side: "source" | "destination"): TlsOptions | undefined {
  const [cert, key, ca] = [readPem(v, "tls-cert"), readPem(v, "tls-key"), readPem(v, "tls-ca")];
  if (!cert && !key && !ca) return undefined;
  if (!cert !== !key) throw usage("--tls-cert and --tls-key: give both (a certificate and its private key)");
  if (side === "destination" && !cert) throw usage("--tls-ca on listen asks sources for certificates; the destination also needs its own: give --tls-cert and --tls-key");
  return { cert, key, ca };
}

/** HOST:PORT, with IPv6 literals in brackets ([::1]:7420). */
export function parseAddress(name: string, text: string | undefined): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d+)$/.exec(text ?? "");
  if (!m) throw usage(`--${name} "${text ?? ""}": write HOST:PORT, e.g. 10.0.0.2:7420 or [::1]:7420`);
  return { host: m[1] ?? m[2], port: parsePort(name, m[3]) };
}

export function parsePort(name: string, text: string): number {
  return parseNumber(name, text, { min: 0, max: 65535, integer: true });
}

/** --progress: line by default (a live line on a terminal, the lasting lines anywhere); none by default with --json. */
export function parseProgress(text: string | undefined, json = false): ProgressMode {
  if (text === undefined) return json ? "none" : "line";
  if (text !== "line" && text !== "json" && text !== "none") throw usage(`--progress "${text}": write line, json or none`);
  return text;
}

function sizeOption(name: string, text: string): number {
  const bytes = parseSize(text);
  if (bytes <= 0) throw usage(`--${name} "${text}": must be more than 0`);
  return bytes;
}

/** The policy's parameters from --downtime-limit, --max-rounds and each --param KEY[=VALUE], checked. */
function policyParameters(v: Values): PolicyParameters {
  const parameters: PolicyParameters = { "downtime-limit": v["downtime-limit"] as string | undefined, "max-rounds": v["max-rounds"] as string | undefined };
  for (const [key, text] of Object.entries(parameters)) if (text !== undefined) parseNumber(key, String(text), { min: 0 });
  for (const p of (v.param as string[] | undefined) ?? []) {
    const m = /^([a-z-]+)(?:=(.*))?$/.exec(p);
    if (!m) throw usage(`--param "${p}": write KEY=VALUE, e.g. --param min-shrink=0.2`);
    if (m[2] !== undefined && m[2] !== "true" && m[2] !== "false") parseNumber(`param ${m[1]}`, m[2]);
    parameters[m[1]] = m[2] ?? true;
  }
  return parameters;
}

/** Reads and checks every source option; nothing is allocated or started here. */
export function sourceSettings(v: Values): SourceSettings {
  const pageSize = sizeOption("page-size", String(v["page-size"]));
  const size = sizeOption("size", String(v.size));
  const regions = regionPages(size, pageSize);
  const workload = v.workload === undefined ? undefined : { kernel: String(v.workload), freeMode: String(v["free-mode"]) as FreeMode };
  if (workload) {
    kernelByName(workload.kernel);
    if (!(FREE_MODES as readonly string[]).includes(workload.freeMode)) throw usage(`--free-mode "${workload.freeMode}": write one of ${FREE_MODES.join(", ")}`);
    if (regions.length > 1) throw usage(`--size "${v.size}": a workload runs in one region, at most ${formatBytes(REGION_BYTES)}`);
  }
  const bandwidth = v.bandwidth === undefined ? undefined : parseRate(String(v.bandwidth));
  if (bandwidth !== undefined && !(bandwidth > 0)) throw usage(`--bandwidth "${v.bandwidth}": must be more than 0`);
  const delta = v.delta === true;
  const parameters = policyParameters(v);
  return {
    size,
    pageSize,
    dirtyRate: parseNumber("dirty-rate", String(v["dirty-rate"]), { min: 0 }),
    channels: parseNumber("channels", String(v.channels), { min: 1, max: MAX_CHANNELS, integer: true }),
    channelThreads: v["channel-threads"] === true,
    fullDigest: v["full-digest"] === true,
    policy: policyByName(String(v.policy), parameters),
    policyName: String(v.policy),
    policyParameters: parameters,
    compress: v.compress === true,
    delta,
    deltaCacheBytes: delta ? sizeOption("delta-cache", String(v["delta-cache"])) : 0,
    bandwidth,
    secret: readSecret(v),
    seed: parseNumber("seed", String(v.seed), { min: 0, integer: true }),
    json: v.json === true,
    progress: parseProgress(v.progress as string | undefined, v.json === true),
    sha256: v.sha256 === true,
    timeoutMs: v.timeout === undefined ? undefined : parseNumber("timeout", String(v.timeout), { min: 0.001 }) * 1000,
    reconnect: parseNumber("reconnect", String(v.reconnect), { min: 0, max: 100, integer: true }),
    workload,
    freePageHints: workload?.freeMode === "hint",
    warmupMs: parseNumber("warmup-seconds", String(v["warmup-seconds"]), { min: 0 }) * 1000,
  };
}
