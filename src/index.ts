/// <reference lib="dom" preserve="true" />
// WebAssembly.Memory and its kin are declared by TypeScript's DOM library only: the reference makes
// the published types compile in a Node project whose lib is just ES20xx.
// The public API of pagewire (re-exports only).
export { Region } from "./memory/region.js";
export { ExternalMemory, copyReceived, receivedMemory, type GuestBuffer } from "./memory/external.js";
export { planLayout, type Layout, type LayoutOptions, type LaneLayout } from "./memory/layout.js";
export { fillPage, mixedClass, PAGE_CLASSES, type PageClass } from "./memory/content.js";
export { Core, DecodeError, type EncodingOptions, type SyncResult } from "./core/core.js";
export type { EncodeStats } from "./abi/abi.js";
export { Hasher } from "./core/hasher.js";
export { DigestPool } from "./core/digest.js";
export { Source, type SourceOptions, type SourceHooks, type Progress, type SourceEvents } from "./migration/source.js";
export { Listener, type ListenerOptions, type DestinationHooks, type Received, type ListenerEvents, type SessionProgress } from "./migration/listener.js";
export type { MigrationStats, RoundReport } from "./migration/stats.js";
export { Checkpoint, type CheckpointOptions, type CheckpointStats, type CheckpointEvents } from "./checkpoint/checkpoint.js";
export { restore, readCheckpoint, type Restored } from "./checkpoint/restore.js";
export type { CheckpointHeader, CheckpointRegion } from "./checkpoint/format.js";
export { JobCoordinator, type JobPlan, type JobOutcome, type CoordinationOptions } from "./job/coordinator.js";
export { RankHost } from "./job/rank-host.js";
export { MessageLayer } from "./workload/mpl.js";
export * from "./policy/index.js";
export { PauseControl, safePoint } from "./workload/pause-control.js";
export { DirtyWriter, type HotSet } from "./workload/dirty-writer.js";
export { Workload, type WorkloadOptions, type WorkloadStateHeader } from "./workload/workload.js";
export { KERNELS, FREE_MODES, type FreeMode, type Kernel } from "./workload/kernels.js";
export { TokenBucket, parseRate } from "./transport/token-bucket.js";
export type { TlsOptions } from "./transport/tls.js";
export { PagewireError } from "./errors.js";
export { WireError } from "./wire/errors.js";
export { PROTOCOL_VERSION } from "./wire/constants.js";
