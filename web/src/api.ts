// The suite's public contracts over gRPC-Web: generated messages and
// service descriptors (buf generate + protoc-gen-es), the gRPC-Web transport
// of connect-web, and the bearer token of this browser session.

import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AggregatorService } from "./gen/jixiao/aggregator/v1/aggregator_pb.js";
import { IndicatorsService } from "./gen/jixiao/indicators/v1/indicators_pb.js";
import { InspectionsService } from "./gen/jixiao/inspections/v1/inspections_pb.js";
import { PlansService } from "./gen/jixiao/plans/v1/plans_pb.js";
import { ReviewsService } from "./gen/jixiao/reviews/v1/reviews_pb.js";
import { t } from "./i18n.js";

const TOKEN_KEY = "jixiao.token";

/** The token of this browser session (sessionStorage: gone with the tab). */
export function getToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return memoryToken;
  }
}

let memoryToken: string | null = null;

export function setToken(token: string | null): void {
  memoryToken = token;
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // sessionStorage may be off (private modes); the token lives in memory.
  }
}

/**
 * Takes a token handed over in the URL fragment (`/#token=…`, the demo's
 * one-click link) into the session and removes it from the address bar and
 * the history, so it is neither bookmarked nor shown over a shoulder.
 */
export function takeTokenFromFragment(): void {
  const hash = location.hash;
  if (!hash.startsWith("#token=")) return;
  const value = hash.slice("#token=".length);
  const amp = value.indexOf("&");
  const token = amp < 0 ? value : value.slice(0, amp);
  const rest = amp < 0 ? "" : value.slice(amp + 1);
  if (token) setToken(decodeURIComponent(token));
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : "#/"));
}

/** What the token says about its holder (read, not verified: the server verifies). */
export interface Claims {
  sub: string;
  roles: string[];
  unit?: string;
  exp: number;
}

/** The token's claims, or why there are none. */
export function claims(token: string | null): Claims | "missing" | "malformed" | "expired" {
  if (!token) return "missing";
  const parts = token.split(".");
  if (parts.length !== 3) return "malformed";
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    const c = JSON.parse(new TextDecoder().decode(bytes)) as Partial<Claims>;
    if (typeof c.sub !== "string" || !Array.isArray(c.roles) || typeof c.exp !== "number") {
      return "malformed";
    }
    if (c.exp * 1000 <= Date.now()) return "expired";
    return c as Claims;
  } catch {
    return "malformed";
  }
}

const bearer: Interceptor = (next) => async (req) => {
  const token = getToken();
  if (token) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

/**
 * The server the dashboard talks to: the one that served it, or `?api=` for
 * a dashboard served elsewhere (the suite answers CORS from any origin).
 */
export function apiBase(): string {
  return new URLSearchParams(location.search).get("api") ?? location.origin;
}

export function grpcWeb(baseUrl = apiBase()): Transport {
  return createGrpcWebTransport({ baseUrl, interceptors: [bearer] });
}

export interface Api {
  aggregator: Client<typeof AggregatorService>;
  plans: Client<typeof PlansService>;
  indicators: Client<typeof IndicatorsService>;
  reviews: Client<typeof ReviewsService>;
  inspections: Client<typeof InspectionsService>;
}

export function makeApi(transport: Transport): Api {
  return {
    aggregator: createClient(AggregatorService, transport),
    plans: createClient(PlansService, transport),
    indicators: createClient(IndicatorsService, transport),
    reviews: createClient(ReviewsService, transport),
    inspections: createClient(InspectionsService, transport),
  };
}

/** How a failed call is shown. */
export type Failure =
  | { kind: "signin"; message: string }
  | { kind: "refused"; message: string }
  | { kind: "notfound"; message: string }
  | { kind: "unavailable"; message: string }
  | { kind: "error"; message: string };

export function failure(e: unknown): Failure {
  const err = ConnectError.from(e);
  const message = err.rawMessage;
  switch (err.code) {
    case Code.Unauthenticated:
      return { kind: "signin", message: t("token_refused") };
    case Code.PermissionDenied:
      return { kind: "refused", message };
    case Code.NotFound:
      return { kind: "notfound", message };
    case Code.Unavailable:
      return { kind: "unavailable", message: message || t("unavailable") };
    case Code.Canceled:
      return { kind: "error", message: "canceled" };
    default:
      return { kind: "error", message: `${Code[err.code]}: ${message}` };
  }
}

export function isAbort(e: unknown): boolean {
  return ConnectError.from(e).code === Code.Canceled;
}
