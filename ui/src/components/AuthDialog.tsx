// Asks for a read key when the Query API answers 401; the key is kept in localStorage.
import { useState, useSyncExternalStore, type FormEvent } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { isAuthNeeded, readKey, saveReadKey, subscribeAuth } from "../api/client";
import { Button } from "./ui";

export function useAuthNeeded(): boolean {
  return useSyncExternalStore(subscribeAuth, isAuthNeeded);
}

export function AuthDialog() {
  const needed = useAuthNeeded();
  const queryClient = useQueryClient();
  const [value, setValue] = useState("");
  if (!needed) return null;
  const hadKey = Boolean(readKey());
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!value.trim()) return;
    saveReadKey(value.trim());
    setValue("");
    void queryClient.invalidateQueries();
  };
  return (
    <div className="fixed inset-0 z-50 flex items-center justify-center bg-slate-900/50 p-4">
      <form
        role="dialog"
        aria-modal="true"
        aria-labelledby="auth-title"
        onSubmit={submit}
        className="w-full max-w-md rounded-lg bg-white p-5 shadow-xl dark:bg-slate-900"
      >
        <h2 id="auth-title" className="text-lg font-semibold">
          Read key required
        </h2>
        <p className="mt-1 text-sm text-slate-600 dark:text-slate-400">
          {hadKey
            ? "The Query API did not accept the saved key. Enter a key with the read scope."
            : "This Query API requires an API key with the read scope."}{" "}
          It is kept in this browser's local storage and sent as a Bearer token.
        </p>
        <label className="mt-4 flex flex-col gap-1 text-sm font-medium">
          Read key
          <input
            autoFocus
            type="password"
            autoComplete="off"
            placeholder="at_read_…"
            value={value}
            onChange={(e) => setValue(e.target.value)}
            className="rounded-md border border-slate-300 bg-white px-2 py-1.5 font-mono text-sm dark:border-slate-700 dark:bg-slate-950"
          />
        </label>
        <div className="mt-4 flex justify-end gap-2">
          {hadKey && (
            <Button variant="ghost" onClick={() => saveReadKey(null)}>
              Forget saved key
            </Button>
          )}
          <Button variant="primary" type="submit" disabled={!value.trim()}>
            Save key
          </Button>
        </div>
      </form>
    </div>
  );
}
