/**
 * Lets one alert through per key and window, counting the ones it holds back, so a misconfigured
 * client logs once per burst instead of once per job.
 */
export class AlertThrottle {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(private readonly windowMs = 60_000) {}

  /** Returns null when the alert should stay quiet, or how many were suppressed since the last one. */
  shouldAlert(key: string, nowMs = Date.now()): { suppressed: number } | null {
    const entry = this.last.get(key);
    if (entry && nowMs - entry.atMs < this.windowMs) {
      entry.suppressed += 1;
      return null;
    }
    this.last.set(key, { atMs: nowMs, suppressed: 0 });
    return { suppressed: entry?.suppressed ?? 0 };
  }
}
