/** The platform's limits on a deployment package, and the check against them (pure). */

export interface PackageLimits {
  zippedBytes: number;
  unzippedBytes: number;
}

/**
 * AWS Lambda's .zip deployment package: 50 MB zipped for a direct upload, 250 MB unzipped (function
 * code and layers together); Lambda counts in MiB ("Unzipped size must be smaller than 262144000 bytes").
 */
export const AWS_LAMBDA_LIMITS: PackageLimits = { zippedBytes: 50 * 1024 * 1024, unzippedBytes: 250 * 1024 * 1024 };

export interface PackageSizes {
  zippedBytes: number;
  unzippedBytes: number;
}

const mb = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;

/** One line per limit exceeded; empty when the package fits. */
export function limitProblems(sizes: PackageSizes, limits: PackageLimits): string[] {
  const problems: string[] = [];
  if (sizes.zippedBytes > limits.zippedBytes) {
    problems.push(
      `the zip is ${sizes.zippedBytes} bytes (${mb(sizes.zippedBytes)}), over the limit of ${limits.zippedBytes} bytes (${mb(limits.zippedBytes)}) zipped`,
    );
  }
  if (sizes.unzippedBytes > limits.unzippedBytes) {
    problems.push(
      `its contents are ${sizes.unzippedBytes} bytes (${mb(sizes.unzippedBytes)}) unzipped, over the limit of ${limits.unzippedBytes} bytes (${mb(limits.unzippedBytes)})`,
    );
  }
  return problems;
}
