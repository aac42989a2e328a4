import { describe, expect, it } from "vitest";
import { activeFilterCount, filtersFromSearch, filtersToApiQuery, filtersToSearch, withFilter } from "./filters";

describe("filters <-> URL", () => {
  it("round-trips every filter through the URL", () => {
    const f = {
      agent_id: "support-agent",
      agent_version: "v1.0.0",
      environment: "production",
      status: "failure",
      failure_type: "tool",
      failure_code: "timeout",
      step_name: "billing_api",
      range: "24h" as const,
    };
    const search = filtersToSearch(f);
    expect(search.toString()).toBe(
      "agent_id=support-agent&agent_version=v1.0.0&environment=production&status=failure&failure_type=tool" +
        "&failure_code=timeout&step_name=billing_api&range=24h",
    );
    expect(filtersFromSearch(search)).toEqual(f);
  });

  it("leaves out empty values and the default range", () => {
    expect(filtersToSearch({ range: "7d", agent_id: "" }).toString()).toBe("");
    expect(filtersFromSearch(new URLSearchParams(""))).toEqual({ range: "7d" });
  });

  it("ignores unknown ranges and invalid timestamps", () => {
    expect(filtersFromSearch(new URLSearchParams("range=3y&since=yesterday"))).toEqual({ range: "7d" });
  });

  it("prefers explicit since/until over a preset", () => {
    const f = filtersFromSearch(new URLSearchParams("range=1h&since=2026-11-01T00:00:00Z"));
    expect(f).toEqual({ range: "all", since: "2026-11-01T00:00:00Z" });
    expect(filtersToSearch(f).toString()).toBe("since=2026-11-01T00%3A00%3A00Z");
  });

  it("keeps a URL-encoded value intact", () => {
    const f = filtersFromSearch(new URLSearchParams("agent_id=%3Cscript%3Ealert(1)%3C%2Fscript%3E"));
    expect(f.agent_id).toBe("<script>alert(1)</script>");
  });
});

describe("filtersToApiQuery", () => {
  it("turns a preset into an absolute since rounded to the minute", () => {
    const now = Date.parse("2026-11-25T10:00:42Z");
    expect(filtersToApiQuery({ range: "1h", status: "failure" }, now)).toEqual({
      status: "failure",
      since: "2026-11-25T09:00:00.000Z",
    });
  });
  it("sends no time bound for 'all'", () => {
    expect(filtersToApiQuery({ range: "all" })).toEqual({});
  });
});

describe("withFilter", () => {
  it("sets and clears a filter and resets the cursor", () => {
    const p = new URLSearchParams("status=failure&cursor=abc");
    expect(withFilter(p, "agent_id", "a").toString()).toBe("status=failure&agent_id=a");
    expect(withFilter(p, "status", undefined).toString()).toBe("");
  });
  it("drops explicit bounds when a preset is picked", () => {
    expect(withFilter(new URLSearchParams("since=2026-01-01T00:00:00Z"), "range", "1h").toString()).toBe("range=1h");
  });
  it("counts active filters", () => {
    expect(activeFilterCount({ range: "all", status: "x", agent_id: "y" })).toBe(2);
  });
});

describe("the project in the URL", () => {
  it("travels to the API and survives a filter change, without counting as a filter", () => {
    const params = new URLSearchParams("project=payments&agent_id=bot");
    const f = filtersFromSearch(params);
    expect(filtersToApiQuery(f, Date.UTC(2026, 0, 1)).project).toBe("payments");
    expect(activeFilterCount(f)).toBe(1);
    expect(withFilter(params, "status", "failure").get("project")).toBe("payments");
    expect(withFilter(params, "project", undefined).has("project")).toBe(false);
  });
});
