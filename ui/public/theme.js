// Applies the saved theme (or the system's) before the first paint, so dark mode never flashes white.
// A separate file rather than an inline script, so the Content-Security-Policy can forbid inline scripts.
try {
  var t = localStorage.getItem("agenttracer.theme");
  if (t === "dark" || (!t && matchMedia("(prefers-color-scheme: dark)").matches)) {
    document.documentElement.classList.add("dark");
  }
} catch (e) {}
