import { describe, expect, it } from "vitest";
import { render, screen } from "@testing-library/react";
import { ApiError, ApiUnreachable } from "../api/client";
import { ErrorState } from "./states";

describe("ErrorState", () => {
  it("says where the unreachable Query API was expected", () => {
    render(<ErrorState error={new ApiUnreachable("http://localhost:8001")} />);
    expect(screen.getByRole("alert")).toHaveTextContent("The Query API is not reachable");
    expect(screen.getByRole("alert")).toHaveTextContent("http://localhost:8001");
    expect(screen.getByRole("alert")).toHaveTextContent("agenttracer up");
  });

  it("explains 401 and 403", () => {
    const { rerender } = render(<ErrorState error={new ApiError(401, "missing key")} />);
    expect(screen.getByRole("alert")).toHaveTextContent("A read key is needed");
    rerender(<ErrorState error={new ApiError(403, "ingest key")} />);
    expect(screen.getByRole("alert")).toHaveTextContent("use a key with the read scope");
  });

  it("shows the API's own message for other errors, as text", () => {
    render(<ErrorState error={new ApiError(422, "until: must be later than since <b>")} />);
    expect(screen.getByRole("alert")).toHaveTextContent("The Query API answered 422");
    expect(screen.getByRole("alert")).toHaveTextContent("until: must be later than since <b>");
  });
});
