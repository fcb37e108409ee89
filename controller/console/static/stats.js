// Pure functions from activation records (or /metrics text) to what the console shows; no DOM here.

// An activation's timing, from its record as OpenWhisk writes it: waitTime (controller receipt to the start
// of the run) and initTime (cold starts only) are annotations; duration covers init and run together.
export function timing(record) {
  const wait = numberOr(annotation(record, "waitTime"), 0);
  const init = numberOr(annotation(record, "initTime"), 0);
  const duration = numberOr(record.duration, 0);
  return { wait, init, run: Math.max(0, duration - init), duration, total: wait + duration, cold: init > 0 || hasAnnotation(record, "initTime") };
}

export function annotation(entity, key) {
  for (const pair of entity.annotations || []) {
    if (pair && pair.key === key) return pair.value;
  }
  return undefined;
}

function hasAnnotation(entity, key) {
  return (entity.annotations || []).some((pair) => pair && pair.key === key);
}

// Which executor ran it: the action's own `executor` annotation when the console knows the action (keyed by
// the record's `path` annotation, "ns/pkg/name"), else the kind's family as runtimes.json ships it: wasm kinds
// on WASM, the rest on Docker.
export function executorOf(record, executorByPath) {
  const path = annotation(record, "path");
  if (path && executorByPath && executorByPath.has(path)) return executorByPath.get(path);
  const kind = String(annotation(record, "kind") || "");
  return kind.startsWith("wasm") ? "wasm" : "docker";
}

// Nearest-rank percentile of an ascending array (p in 0..100); null for no values.
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

// Per time bucket over [now - windowMs, now): throughput (activations/s), latency percentiles (waitTime +
// duration) and, per executor, the share of cold starts in %. Buckets without activations hold null, so
// the chart shows a gap rather than a made-up zero latency.
export function liveSeries(records, { nowMs, windowMs, bucketMs, executorByPath }) {
  const count = Math.ceil(windowMs / bucketMs);
  const first = Math.floor((nowMs - windowMs) / bucketMs) * bucketMs;
  const buckets = Array.from({ length: count + 1 }, () => ({ latencies: [], byExecutor: new Map() }));
  const executors = new Set();
  for (const record of records) {
    const index = Math.floor((record.start - first) / bucketMs);
    if (index < 0 || index >= buckets.length) continue;
    const t = timing(record);
    const bucket = buckets[index];
    bucket.latencies.push(t.total);
    const executor = executorOf(record, executorByPath);
    executors.add(executor);
    const tally = bucket.byExecutor.get(executor) || { cold: 0, all: 0 };
    tally.all += 1;
    if (t.cold) tally.cold += 1;
    bucket.byExecutor.set(executor, tally);
  }
  const names = [...executors].sort();
  const series = {
    time: [], throughput: [], p50: [], p95: [], p99: [],
    executors: names, coldShare: names.map(() => []),
  };
  buckets.forEach((bucket, i) => {
    series.time.push((first + i * bucketMs) / 1000);
    series.throughput.push(bucket.latencies.length / (bucketMs / 1000));
    const sorted = bucket.latencies.slice().sort((a, b) => a - b);
    series.p50.push(percentile(sorted, 50));
    series.p95.push(percentile(sorted, 95));
    series.p99.push(percentile(sorted, 99));
    names.forEach((name, j) => {
      const tally = bucket.byExecutor.get(name);
      series.coldShare[j].push(tally ? (100 * tally.cold) / tally.all : null);
    });
  });
  return series;
}

// Totals over the whole window, for the text summary beside the charts.
export function liveSummary(records) {
  const sorted = records.map((r) => timing(r).total).sort((a, b) => a - b);
  const cold = records.filter((r) => timing(r).cold).length;
  return {
    count: records.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    coldShare: records.length ? (100 * cold) / records.length : null,
  };
}

// The Prometheus text exposition format, samples only (# HELP/# TYPE skipped): [{name, labels, value}].
export function parsePrometheus(text) {
  const samples = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[4]);
    if (Number.isNaN(value) && match[4] !== "NaN") continue;
    samples.push({ name: match[1], labels: parseLabels(match[3] || ""), value });
  }
  return samples;
}

function parseLabels(text) {
  const labels = {};
  const pattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/g;
  let match;
  while ((match = pattern.exec(text)) !== null) {
    labels[match[1]] = match[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
  }
  return labels;
}

function numberOr(value, fallback) {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}
