// Entry point of the kernel module: every export here is callable from the host.
export { gemm, gemm_dot, gemm_scratch_bytes } from "./gemm";
export { decode_row } from "./dtype";

/** First free byte after the module's static data; the host's arena starts here. */
export function heap_base(): usize {
  return __heap_base;
}
