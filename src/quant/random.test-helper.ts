/** Deterministic test data for the quantizer's tests: a seeded LCG giving uniform numbers in [-0.5, 0.5). */
export function rand(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 2 ** 32 - 0.5;
  };
}
