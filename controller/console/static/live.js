// The live view's three charts, drawn by uPlot (window.uPlot, vendor/uPlot.iife.min.js).
// Each chart's container carries data-series and data-points (the y values drawn), so a test or an operator's
// script can tell a chart with data from an empty frame without reading pixels.

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
const HEIGHT = 220;

export class LiveCharts {
  constructor(throughputElement, latencyElement, coldElement) {
    this.throughput = new Chart(throughputElement, ["activations/s"], { min: 0 });
    this.latency = new Chart(latencyElement, ["p50", "p95", "p99"], { min: 0 });
    this.coldElement = coldElement;
    this.cold = null;
  }

  update(series) {
    this.throughput.setData(series.time, [series.throughput]);
    this.latency.setData(series.time, [series.p50, series.p95, series.p99]);
    // One line per executor seen in the window: rebuilt when that set changes.
    const labels = series.executors.length ? series.executors : ["(no activations)"];
    const data = series.executors.length ? series.coldShare : [series.time.map(() => null)];
    if (!this.cold || this.cold.labels.join() !== labels.join()) {
      if (this.cold) this.cold.destroy();
      this.cold = new Chart(this.coldElement, labels, { min: 0, max: 100 });
    }
    this.cold.setData(series.time, data);
  }
}

class Chart {
  constructor(element, labels, range) {
    this.element = element;
    this.labels = labels;
    const width = Math.max(320, element.clientWidth || 600);
    const options = {
      width,
      height: HEIGHT,
      scales: { x: { time: true }, y: { range: (_u, min, max) => [range.min, range.max ?? Math.max(1, max * 1.1)] } },
      series: [
        {},
        ...labels.map((label, i) => ({
          label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          // Filled points: a bucket with activations between two empty ones is a point, not a line.
          points: { show: true, size: 7, fill: COLORS[i % COLORS.length] },
          spanGaps: false,
        })),
      ],
      axes: [{}, {}],
      legend: { show: true },
    };
    element.replaceChildren();
    this.plot = new window.uPlot(options, [[], ...labels.map(() => [])], element);
  }

  setData(time, ys) {
    this.plot.setData([time, ...ys]);
    const points = ys.reduce((sum, y) => sum + y.filter((v) => v !== null && v !== undefined).length, 0);
    this.element.dataset.series = String(ys.length);
    this.element.dataset.points = String(points);
  }

  destroy() {
    this.plot.destroy();
  }
}
