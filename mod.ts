/**
 * mesp: LoRA fine-tuning of Qwen2-architecture models with exact gradients in little memory, on a CPU,
 * inside WebAssembly. This module is the public API; it uses no Deno-only API, so it also runs in browsers
 * and edge runtimes (weights come through a {@linkcode WeightSource}: bytes, a `fetch` URL with HTTP Range,
 * or a user-picked `File`). The command line (`src/cli/`) is a thin layer over it.
 *
 * @example Fine-tune from a weight pack fetched by URL
 * ```ts
 * import { fetchSource, openPack, train } from "./mod.ts";
 *
 * const pack = await openPack(fetchSource("https://example.com/qwen2.5-0.5b-q4.pack"));
 * const data = [{ ids: new Int32Array([9707, 1879, 0]), targets: new Uint8Array([0, 1, 1]) }];
 * const result = await train(pack, data, [], { seqLen: 256, steps: 10, lora: { rank: 8 } });
 * ```
 *
 * @module
 */

// Runtime: kernels, the planned arena, GEMM, process memory
export {
  DTYPE,
  KERNEL_FILES,
  type KernelFile,
  type KernelLocation,
  type Kernels,
  loadKernels,
  type LoadKernelsOptions,
  type Variant,
  VARIANTS,
  type WeightDtype,
} from "./src/runtime/kernels.ts";
export type { KernelExports } from "./src/runtime/kernel_exports.ts";
export type { Pool, PoolOptions, Profile } from "./src/runtime/pool.ts";
export {
  Arena,
  type ArenaOptions,
  formatMB,
  formatPlan,
  type MemoryPlan,
  parseSize,
  planMemory,
  PlanTooLargeError,
  type Region,
  type RegionSpec,
} from "./src/runtime/arena.ts";
export { Gemm, type GemmOptions } from "./src/runtime/gemm.ts";
export type { WeightRef } from "./src/runtime/weight_ref.ts";
export { type ProcessMemory, processMemory } from "./src/runtime/memory.ts";

// Model files: sources, config, safetensors, quantization, weight packs, random checkpoints
export {
  blobFiles,
  blobSource,
  type ByteSink,
  bytesSource,
  type CachedFile,
  fetchSource,
  type FetchSourceOptions,
  FileNotFoundError,
  memoryFiles,
  type MemoryFilesOptions,
  type ModelFiles,
  type RangeCache,
  urlFiles,
  type UrlFilesOptions,
  type WeightSource,
} from "./src/io/source.ts";
export {
  cacheStorageRangeCache,
  type CacheStorageRangeCacheOptions,
  memoryRangeCache,
  type MemoryRangeCacheOptions,
} from "./src/io/range_cache.ts";
export {
  type R2BucketLike,
  r2Files,
  type R2ObjectInfo,
  type R2ObjectWithBody,
  r2Source,
  type R2SourceOptions,
} from "./src/io/r2.ts";
export type {
  OpfsDirectoryHandle,
  OpfsFileHandle,
  OpfsSyncAccessHandle,
  OpfsWritableFile,
} from "./src/io/opfs.ts";
export {
  type OpfsRangeCache,
  opfsRangeCache,
  type OpfsRangeCacheOptions,
} from "./src/io/opfs_range_cache.ts";
export { type OpfsSpillFile, opfsSpillFile, type OpfsSpillFileOptions } from "./src/io/opfs_spill_file.ts";
export { unzip, unzipStore, type ZipEntry, zipStore } from "./src/io/zip.ts";
export {
  HUB_ENDPOINT,
  hubFiles,
  type HubFilesOptions,
  hubFileUrl,
  type HubModelId,
  parseHubId,
} from "./src/io/hub.ts";
export {
  type ModelConfig,
  type ParamCounts,
  paramCounts,
  parseModelConfig,
  type ParseModelConfigOptions,
  type PresetName,
  PRESETS,
  type Quantization,
} from "./src/model/config.ts";
export {
  type Checkpoint,
  type Dtype,
  DTYPE_BITS,
  encodeSafetensors,
  openCheckpoint,
  readSafetensorsHeader,
  readTensorF32,
  type SafetensorsFile,
  type TensorData,
  type TensorEntry,
  type TensorInfo,
  type TensorLocation,
  type TensorSpec,
  writeSafetensors,
} from "./src/model/safetensors.ts";
export {
  dequantize,
  type DequantizeOptions,
  type QuantBits,
  quantize,
  type Quantized,
  type QuantizeOptions,
  type ScaleDtype,
} from "./src/model/quantize.ts";
export {
  checkpointFingerprint,
  type ContentChecksum,
  type FingerprintProgress,
} from "./src/model/checkpoint_fingerprint.ts";
export { openPack, type OpenPackOptions, type Pack } from "./src/model/pack.ts";
export { StalePackError } from "./src/model/pack_header.ts";
export type {
  LayerLayout,
  MatrixSlot,
  MlpChunkLayout,
  PackFormat,
  VectorSlot,
  VocabSlot,
} from "./src/model/pack_layout.ts";
export type { VocabRowViews } from "./src/model/pack_vocab.ts";
export { type PackHeader, planPack, type Section } from "./src/model/pack_header.ts";
export { writePack, type WritePackOptions } from "./src/model/pack_writer.ts";
export {
  type FloatDtype,
  makeModel,
  type MakeModelOptions,
  type MakeModelProgress,
  type MakeModelTokenizerFiles,
  type ModelFormat,
  type ModelPlan,
  type ModelSink,
  planModel,
  type PlannedFile,
  type PlannedTensor,
  type TensorPart,
  type WeightInit,
} from "./src/model/make_model.ts";
export { ATTENTION, type AttentionLinear, type Linear, LINEARS } from "./src/model/qwen2.ts";

// Text and data
export {
  createStreamDecoder,
  type DecodeOptions,
  loadTokenizer,
  type LoadTokenizerOptions,
  type StreamDecoder,
  type StreamDecoderOptions,
  type Tokenizer,
  type TokenizerFiles,
  type TokenizerModule,
} from "./src/text/tokenizer.ts";
export {
  type ChatDefaults,
  chatDefaultsFromTemplate,
  type ChatMessage,
  type ChatRole,
  renderChat,
  type RenderChatOptions,
} from "./src/text/chat.ts";
export {
  type ChatRecord,
  type DatasetRecord,
  parseJsonl,
  type ParseJsonlOptions,
  type TextRecord,
  tokenizeDataset,
  type TokenizedExample,
  tokenizeExample,
  type TokenizeOptions,
  type TokenizeStats,
  type TokensRecord,
} from "./src/data/dataset.ts";
export {
  buildTokenCache,
  decodeTokenCache,
  type DecodeTokenCacheOptions,
  encodeTokenCache,
  type ResolvedTokenCacheOptions,
  type TokenCache,
  type TokenCacheBuildJob,
  type TokenCacheMeta,
  type TokenCacheOptions,
  tokenizeInWorker,
} from "./src/data/token_cache.ts";

// Engine: forward, MeSP/MeBP backward, MeZO, LoRA layout, adapters, optimizers, plans
export { Engine, type EngineOptions, type LinearRefs } from "./src/engine/engine.ts";
export type { Schedule } from "./src/engine/schedule.ts";
export type { LayerVector } from "./src/engine/weight_stream.ts";
export { Backward, type GradSink } from "./src/engine/backward.ts";
export { forwardBackward, type StepLoss } from "./src/engine/step.ts";
export { type ZoEstimate, zoEstimate, zoUpdate } from "./src/engine/mezo.ts";
export { type LoraLayout, loraLayout, type LoraOptions, type LoraPair, peftName } from "./src/engine/lora.ts";
export {
  type AdapterConfig,
  adapterConfigJson,
  encodeLoraTensors,
  openAdapter,
  type OpenedAdapter,
  parseAdapterConfig,
  readAdapterInto,
  writeLoraTensors,
} from "./src/engine/adapter.ts";
export { learningRate, Optimizer, type OptimizerOptions } from "./src/engine/optimizer.ts";
export { memorySpill, type SpillFile } from "./src/io/spill_file.ts";
export { type AdapterValues, type LayeredValues, piecesOf } from "./src/engine/adapter_values.ts";
export {
  type KeepSchedule,
  type Method,
  type OptimizerName,
  type PlanOptions,
  planRegions,
  type RunMode,
} from "./src/engine/plan.ts";

// Runs: training, evaluation, generation, gradients, training state, loss curves
export {
  NonFiniteError,
  planTraining,
  type StateTensor,
  type StoredTrainState,
  train,
  type TrainEvent,
  type TrainOptions,
  type TrainResult,
  type TrainState,
} from "./src/run/train.ts";
export { sequencesFingerprint, type TrainConfig } from "./src/run/train_config.ts";
export { evaluate, type EvaluateOptions, type EvaluateResult } from "./src/run/evaluate.ts";
export type { Sequence } from "./src/data/sequence.ts";
export { generate, type GenerateOptions, sampler } from "./src/run/generate.ts";
export { computeGradients, type GradOptions, type GradResult } from "./src/run/grad.ts";
export {
  decodeTrainingState,
  openTrainingState,
  TRAINING_STATE_FILE,
  trainingStateStream,
  type TrainingStateStreamOptions,
  writeTrainingState,
} from "./src/run/training_state.ts";
// the training state's names before the rename, one more release
import { decodeTrainingState, writeTrainingState } from "./src/run/training_state.ts";
/**
 * @deprecated Renamed {@linkcode writeTrainingState} ("checkpoint" now means a base model's files only);
 * this alias goes in the next release.
 */
export const writeCheckpoint: typeof writeTrainingState = writeTrainingState;
/**
 * @deprecated Renamed {@linkcode decodeTrainingState} ("checkpoint" now means a base model's files only);
 * this alias goes in the next release.
 */
export const decodeCheckpoint: typeof decodeTrainingState = decodeTrainingState;
export { type LossCurveOptions, lossCurveSvg } from "./src/run/loss_svg.ts";
