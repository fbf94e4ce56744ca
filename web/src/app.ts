// What every page is handed: the clients, the signed-in principal, the
// cycle/group/unit context, and a signal that ends the page's calls when
// the reader moves on.

import type { Api, Claims } from "./api.js";
import type { Group, Unit } from "./gen/jixiao/plans/v1/plans_pb.js";

export interface App {
  api: Api;
  claims: Claims;
  /** Groups of the selected cycle. */
  groups: Group[];
  /** The selected group, `cycles/{cycle}/groups/{group}`. */
  group: string;
  /** Display name of a group. */
  groupLabel(name: string): string;
  /** Units by name (`units/{unit}`), loaded on first need. */
  units(): Promise<Map<string, Unit>>;
  /** A unit's name in the current language, once `units()` has loaded. */
  unitLabel(name: string, fallback?: string): string;
  /** Moves to a page with parameters (kept in the URL fragment). */
  go(page: string, params?: Record<string, string>): void;
  /** Shows the sign-in view with a reason. */
  signIn(reason: string): void;
}

export interface PageCtx {
  app: App;
  main: HTMLElement;
  params: URLSearchParams;
  signal: AbortSignal;
}

export type Role = "office" | "evaluator" | "inspector" | "unit" | "provider" | "viewer" | "service" | "survey_platform";

export function hasAny(c: Claims, roles: Role[]): boolean {
  return c.roles.some((r) => roles.includes(r as Role));
}

/** Measurements the browser tests and benchmarks read. */
export interface Probe {
  /** performance.now() when the first standings table was on screen. */
  firstRender?: number;
  /** One entry per standings message shown. */
  /** One entry per standings message shown: when it arrived, when the
   *  table had changed (DOM), and when the frame showing it was done. */
  updates: { revision: string; received: number; applied: number; frame?: number; cells: number }[];
}

declare global {
  interface Window {
    __jixiao?: Probe;
  }
}

export function probe(): Probe {
  window.__jixiao ??= { updates: [] };
  return window.__jixiao;
}
