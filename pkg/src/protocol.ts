/**
 * Messages between the page and the glassbox worker. A request names an operation; the worker
 * answers it once with a value or an error, and may send events (progress, tokens, text) for
 * it before that.
 */

export interface Request {
  id: number;
  op: string;
  args: Record<string, unknown>;
}

export interface ErrorInfo {
  name: string;
  message: string;
}

export type Reply =
  | { id: number; kind: "value"; value: unknown }
  | { id: number; kind: "error"; error: ErrorInfo; fatal: boolean }
  | { id: number; kind: "event"; event: string; data: unknown };
