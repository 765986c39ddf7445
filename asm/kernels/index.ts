// Entry point of the kernel module: every export here is callable from the host.
export { gemm, gemm_dot, gemm_scratch_bytes, gemm_tile_columns, gemm_tile_rows } from "./gemm";
export { decode_row } from "./dtype";
export { rmsnorm_forward, rmsnorm_backward } from "./norm";
export { rope_forward, rope_backward } from "./rope";
export { softmax_causal_forward, softmax_causal_backward } from "./softmax";
export { swiglu_forward, swiglu_backward } from "./activation";
export { ce_chunk_forward, ce_finish, ce_chunk_fused, ce_fused_finish } from "./loss";
export { axpy, scale, sum_squares, f32_to_bf16 } from "./elementwise";
// exported for their accuracy test (tests/ops_test.ts): the exp and log every other kernel inlines
export { exp_array, log_array } from "./math";
export { sgd_update, adamw_update } from "./optim";
export { normal_fill, zo_perturb, zo_update } from "./rng";

/** First free byte after the module's static data; the host's arena starts here. */
export function heap_base(): usize {
  return __heap_base;
}
