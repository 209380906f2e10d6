// lookup: answers each task (a word) from the worker's SQLite connection, opened once
// per worker by sqlite_resource. The statement is prepared once at init and finalized
// in fini, which runs before the connection closes (fini's priority is above the
// resource's). Params: `resource` (default "db"), `query` (default looks up `words`).
#include <shoal/plugin.hpp>

#include <sqlite3.h>

#include <stdexcept>
#include <string>

namespace {

class Lookup {
 public:
  explicit Lookup(shoal::Init& init) {
    const auto resource = init.param<std::string>("resource");
    auto* db = static_cast<sqlite3*>(init.resource(resource.c_str()));
    if (db == nullptr) throw std::runtime_error("no resource named '" + resource + "' (configure it under resources:)");
    const auto query = init.param<std::string>("query");
    if (sqlite3_prepare_v3(db, query.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK)
      throw std::runtime_error("cannot prepare '" + query + "': " + sqlite3_errmsg(db));
    db_ = db;
  }
  ~Lookup() { sqlite3_finalize(stmt_); }

  void run(shoal::Input in, shoal::Output& out) {
    sqlite3_reset(stmt_);
    sqlite3_bind_text(stmt_, 1, in.data(), static_cast<int>(in.size()), SQLITE_TRANSIENT);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_DONE) throw std::runtime_error("no entry for '" + std::string(in.view()) + "'");
    if (rc != SQLITE_ROW) throw std::runtime_error(std::string("query failed: ") + sqlite3_errmsg(db_));
    const auto* text = sqlite3_column_text(stmt_, 0);
    int n = sqlite3_column_bytes(stmt_, 0);
    out.write(std::string_view(reinterpret_cast<const char*>(text), static_cast<size_t>(n)));
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

SHOAL_PARAMS(SHOAL_PARAM_STRING("resource", SHOAL_DEFAULT("db"), "the resource that holds the SQLite connection")
             SHOAL_PARAM_STRING("query", SHOAL_DEFAULT("SELECT definition FROM words WHERE word = ?1"),
                                "the statement each task runs; ?1 is the task's input"))
SHOAL_PLUGIN(Lookup)
