import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { setConfig } from "./client";
import { getAllAgents, MAX_AGENT_PAGES } from "./hooks";

function agent(id: string) {
  return { agent_id: id, run_count: 1, last_seen: null, versions: [], environments: [] };
}

function jsonResponse(body: unknown): Response {
  return new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
}

describe("getAllAgents", () => {
  beforeEach(() => setConfig({ queryUrl: "http://api.test:8001" }));
  afterEach(() => vi.unstubAllGlobals());

  it("follows next_cursor until the last page and joins the pages in order", async () => {
    const pages: Record<string, unknown> = {
      "": { items: [agent("a"), agent("b")], next_cursor: "c1" },
      c1: { items: [agent("c")], next_cursor: null },
    };
    const fetchMock = vi.fn(async (url: URL) => jsonResponse(pages[url.searchParams.get("cursor") ?? ""]));
    vi.stubGlobal("fetch", fetchMock);
    const all = await getAllAgents();
    expect(all.items.map((a) => a.agent_id)).toEqual(["a", "b", "c"]);
    expect(fetchMock).toHaveBeenCalledTimes(2);
    expect(String(fetchMock.mock.calls[1]![0])).toBe("http://api.test:8001/v1/agents?limit=500&cursor=c1");
  });

  it("stops after MAX_AGENT_PAGES pages however many the server offers", async () => {
    let n = 0;
    const fetchMock = vi.fn(async () => jsonResponse({ items: [agent(`a${n}`)], next_cursor: `c${++n}` }));
    vi.stubGlobal("fetch", fetchMock);
    const all = await getAllAgents();
    expect(fetchMock).toHaveBeenCalledTimes(MAX_AGENT_PAGES);
    expect(all.items).toHaveLength(MAX_AGENT_PAGES);
  });
});
