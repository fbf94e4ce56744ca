// Apache ECharts with only what the dashboard draws: bar and line charts on
// a grid with tooltips and legends, on canvas. Loaded after the first table
// is on screen (a chunk of its own), so charts never hold up the figures.

import * as echarts from "echarts/core";
import { BarChart, LineChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([BarChart, LineChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

export interface Chart {
  set(option: echarts.EChartsCoreOption): void;
  dispose(): void;
}

const FONT = '"Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif';

export function chart(el: HTMLElement): Chart {
  const c = echarts.init(el, undefined, { renderer: "canvas" });
  const resize = () => c.resize();
  window.addEventListener("resize", resize);
  return {
    set(option) {
      c.setOption({ textStyle: { fontFamily: FONT }, animation: false, ...option }, { notMerge: true, lazyUpdate: true });
    },
    dispose() {
      window.removeEventListener("resize", resize);
      c.dispose();
    },
  };
}

export interface StackSeries {
  name: string;
  values: (number | null)[];
}

/** Horizontal stacked bars, one per category (rank 1 on top). */
export function stackedBars(categories: string[], series: StackSeries[]): echarts.EChartsCoreOption {
  return {
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: { top: 0 },
    grid: { left: 8, right: 24, top: 32, bottom: 8, containLabel: true },
    xAxis: { type: "value" },
    yAxis: { type: "category", inverse: true, data: categories },
    series: series.map((s) => ({
      type: "bar",
      name: s.name,
      stack: "score",
      large: categories.length > 200,
      data: s.values,
    })),
  };
}

/** Grouped vertical bars. */
export function groupedBars(categories: string[], series: StackSeries[]): echarts.EChartsCoreOption {
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 8, right: 24, top: 32, bottom: 8, containLabel: true },
    xAxis: { type: "category", data: categories },
    yAxis: { type: "value" },
    series: series.map((s) => ({ type: "bar", name: s.name, data: s.values })),
  };
}

/** Composite (left axis) and rank (right axis, 1 on top) across cycles. */
export function archiveLines(
  cycles: string[],
  composite: { name: string; values: (number | null)[] },
  rank: { name: string; values: (number | null)[] },
): echarts.EChartsCoreOption {
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 8, right: 8, top: 32, bottom: 8, containLabel: true },
    xAxis: { type: "category", data: cycles },
    yAxis: [
      { type: "value", name: composite.name, scale: true },
      { type: "value", name: rank.name, inverse: true, minInterval: 1, min: 1 },
    ],
    series: [
      { type: "line", name: composite.name, data: composite.values, symbolSize: 8, label: { show: true } },
      { type: "line", name: rank.name, yAxisIndex: 1, data: rank.values, symbolSize: 8, label: { show: true } },
    ],
  };
}
