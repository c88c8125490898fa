/**
 * Norms of weight vectors, shared by the device (diagnostics of its delta) and the coordinator (the
 * upload's finiteness check and norm bound, server optimizers). Pure arithmetic, no TensorFlow.js.
 */

/**
 * Sum of the squared values, accumulated in float64. Non-finite exactly when some value is NaN or
 * infinite, so one pass also checks finiteness (the coordinator runs it on every upload).
 */
export function sumOfSquares(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]! * values[i]!;
  return sum;
}

/** L2 norm of one flat vector, or of several tensors taken together (a delta tensor by tensor). */
export function l2Norm(values: ArrayLike<number> | readonly ArrayLike<number>[]): number {
  if (!isTensorList(values)) return Math.sqrt(sumOfSquares(values));
  let sum = 0;
  for (const tensor of values) sum += sumOfSquares(tensor);
  return Math.sqrt(sum);
}

function isTensorList(values: ArrayLike<number> | readonly ArrayLike<number>[]): values is readonly ArrayLike<number>[] {
  return values.length > 0 && typeof values[0] !== 'number';
}
