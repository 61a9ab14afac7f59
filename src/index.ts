// The public API of pagewire (re-exports only).
export { Region } from "./memory/region.js";
export { ExternalMemory, type GuestBuffer } from "./memory/external.js";
export { planLayout, type Layout, type LayoutOptions, type LaneLayout } from "./memory/layout.js";
export { fillPage, mixedClass, PAGE_CLASSES, type PageClass } from "./memory/content.js";
export { Core, DecodeError, type EncodingOptions } from "./core/core.js";
export { DigestPool, digestNow } from "./core/digest.js";
export { Source, type SourceOptions, type SourceHooks, type Progress } from "./migration/source.js";
export { Listener, type ListenerOptions, type DestinationHooks, type Received } from "./migration/destination.js";
export type { MigrationStats, RoundReport } from "./migration/stats.js";
export * from "./policy/index.js";
export { PauseControl, safePoint } from "./workload/pause-control.js";
export { DirtyWriter } from "./workload/dirty-writer.js";
export { Workload, type WorkloadOptions } from "./workload/workload.js";
export { KERNELS, FREE_MODES, type FreeMode } from "./workload/kernels.js";
export { TokenBucket, parseRate } from "./transport/token-bucket.js";
export { PagewireError } from "./errors.js";
export { WireError } from "./wire/errors.js";
export { PROTOCOL_VERSION } from "./wire/constants.js";
