// `shoal serve --help`: the text docs/cli.md is generated from (scripts/cli-reference.sh).
#include "scale_out.hpp"

namespace shoal::cli {

namespace {

constexpr std::string_view kServeUsage =
    "Usage: shoal serve CONFIG [--redis URL] [--stream NAME] [--group NAME] [--consumer NAME] [--pool NAME]\n"
    "                   [--connect-timeout DURATION] [--metrics [HOST:]PORT]\n"
    "                   [--stats FILE] [--stats-interval DURATION]\n"
    "\n"
    "Takes tasks from a Redis stream and runs them in a pool of CONFIG; several hosts may\n"
    "serve one stream. Each outcome is written to STREAM:results as JSON (the fields of\n"
    "'shoal run' plus \"id\" and \"consumer\"), then the task's entry is acknowledged and deleted.\n"
    "\n"
    "Options (each overrides the key of CONFIG's redis: section):\n"
    "  --redis URL       redis://HOST[:PORT][/DB] or unix:///PATH              (redis.url)\n"
    "  --redis-password-file FILE\n"
    "                    the password, kept out of the URL (which ps shows); or\n"
    "                    $SHOAL_REDIS_PASSWORD, which workers never see   (redis.password_file)\n"
    "  --stream NAME     the task stream (default shoal:tasks)                 (redis.stream)\n"
    "  --group NAME      the consumer group of the fleet (default shoal)       (redis.group)\n"
    "  --consumer NAME   this host's name in the group (default HOSTNAME-PID)  (redis.consumer)\n"
    "  --pool NAME       the pool that runs the tasks (required when CONFIG has several)\n"
    "  --connect-timeout DURATION\n"
    "                    exit 2 when Redis has not answered within DURATION of the start\n"
    "                    (500ms, 30s, 5m; default 0: wait as long as it takes). Until it\n"
    "                    answers, the host says \"waiting for Redis at URL\" and is not ready\n"
    "  --metrics [HOST:]PORT\n"
    "                    serve /metrics (OpenMetrics), /healthz, /readyz over HTTP;\n"
    "                    no HOST: 127.0.0.1; port 0: a free one (logged)    (metrics)\n"
    "  --stats FILE      write the host's counters to FILE as JSON, as 'shoal run'\n"
    "                    does, with its Redis figures (\"redis\": connected,\n"
    "                    reconnects, pending, lag, dead_lettered, outbox)\n"
    "  --stats-interval DURATION\n"
    "                    how often --stats is rewritten, 50ms to 24h (default 5s)\n"
    "  -h, --help        show this help\n"
    "\n"
    "An entry idle past redis.visibility_timeout (a host died) is claimed by another host;\n"
    "a task that crashes or times out is delivered again, and after redis.max_deliveries\n"
    "failed deliveries it goes to STREAM:dead with its last outcome ('shoal dead' lists\n"
    "and requeues them); each failed delivery is a warning naming the entry and task id.\n"
    "A lost connection is retried with back-off.\n"
    "\n"
    "Signals:\n"
    "  SIGTERM, SIGINT  stop taking tasks, hand back those not started, give running ones\n"
    "                   shutdown.grace to finish (then hand them back too; a hand-back is\n"
    "                   no failed delivery), write the outcomes, run every finalizer,\n"
    "                   exit 0. A second SIGTERM or SIGINT ends the host at once.\n"
    "  SIGHUP           read CONFIG again and reload the pool while tasks flow: workers\n"
    "                   are replaced one at a time by workers of the new config (a new\n"
    "                   generation); task_timeout and retries apply at once. A config that\n"
    "                   does not load, or a new worker that cannot start, changes nothing:\n"
    "                   the running pool serves on and one line (FILE:LINE:COLUMN for the\n"
    "                   config) says why. The redis: section and the pool served change\n"
    "                   only with a restart. A SIGHUP during a reload runs one more after\n"
    "                   it. Each result carries its \"generation\" (0 until the first reload).\n"
    "\n"
    "Under systemd (Type=notify; see the shipped shoal-serve@.service): with $NOTIFY_SOCKET\n"
    "set, the host sends STATUS= lines (starting, waiting for Redis, serving), READY=1 once\n"
    "the pool is up and Redis answers, RELOADING=1 then READY=1 around a SIGHUP reload,\n"
    "STOPPING=1 when a stop begins, and WATCHDOG=1 every half $WATCHDOG_USEC while its loop\n"
    "turns. Workers do not inherit $NOTIFY_SOCKET or $WATCHDOG_USEC.\n"
    "\n"
    "Exit status: 0 stopped by a signal; 1 the pool failed or outcomes could not be written;\n"
    "2 usage, config, pool start error, AUTH or SELECT refused, a key of the wrong type in\n"
    "Redis, or no connection within --connect-timeout.\n";

}  // namespace

std::string_view serve_usage() noexcept { return kServeUsage; }

}  // namespace shoal::cli
