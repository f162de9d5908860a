/**
 * Kills the benchmark's children if the orchestrator dies without cleaning up (kill -9, crash):
 * it receives their pids over IPC and SIGKILLs them when the IPC channel closes or it is orphaned.
 */
const pids = new Set<number>();
process.on("message", (m: { pid: number }) => pids.add(m.pid));
const reap = () => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  process.exit(0);
};
process.on("disconnect", reap);
setInterval(() => {
  if (process.ppid === 1) reap();
}, 500);
