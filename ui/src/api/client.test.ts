import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, ApiUnreachable, getJson, isAuthNeeded, loadConfig, saveReadKey, setConfig } from "./client";

function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

describe("getJson", () => {
  beforeEach(() => {
    setConfig({ queryUrl: "http://api.test:8001" });
    localStorage.clear();
    saveReadKey(null);
  });
  afterEach(() => vi.unstubAllGlobals());

  it("builds the URL from the query, leaving out empty values", async () => {
    const fetchMock = vi.fn().mockResolvedValue(jsonResponse(200, { ok: true }));
    vi.stubGlobal("fetch", fetchMock);
    await getJson("/v1/runs", { agent_id: "a b", status: "", limit: 50, cursor: undefined });
    expect(String(fetchMock.mock.calls[0]![0])).toBe("http://api.test:8001/v1/runs?agent_id=a+b&limit=50");
  });

  it("sends the saved read key as a Bearer token", async () => {
    const fetchMock = vi.fn().mockResolvedValue(jsonResponse(200, {}));
    vi.stubGlobal("fetch", fetchMock);
    saveReadKey("at_read_abc");
    await getJson("/v1/agents");
    expect(fetchMock.mock.calls[0]![1].headers.Authorization).toBe("Bearer at_read_abc");
  });

  it("turns a network failure into ApiUnreachable naming the URL", async () => {
    vi.stubGlobal("fetch", vi.fn().mockRejectedValue(new TypeError("Failed to fetch")));
    await expect(getJson("/v1/runs")).rejects.toEqual(new ApiUnreachable("http://api.test:8001"));
  });

  it("raises ApiError with the API's detail, flattening validation errors", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn().mockResolvedValue(jsonResponse(422, { detail: [{ loc: ["query", "status"], msg: "bad value" }] })),
    );
    const err = await getJson("/v1/runs").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(422);
    expect((err as ApiError).detail).toBe("query.status: bad value");
  });

  it("asks for a read key after a 401, and stops asking once one is saved", async () => {
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(jsonResponse(401, { detail: "a read key is required" })));
    expect(isAuthNeeded()).toBe(false);
    await expect(getJson("/v1/runs")).rejects.toBeInstanceOf(ApiError);
    expect(isAuthNeeded()).toBe(true);
    saveReadKey("at_read_x");
    expect(isAuthNeeded()).toBe(false);
  });
});

describe("loadConfig", () => {
  it("reads the Query API URL from /config.json", async () => {
    const c = await loadConfig(vi.fn().mockResolvedValue(jsonResponse(200, { query_url: "http://q:9/" })));
    expect(c.queryUrl).toBe("http://q:9");
  });
  it("falls back to port 8001 on this host", async () => {
    const c = await loadConfig(vi.fn().mockRejectedValue(new TypeError("x")));
    expect(c.queryUrl).toBe(`${window.location.protocol}//${window.location.hostname}:8001`);
  });
});
