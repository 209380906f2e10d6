// Builds the example SQLite database of the lookup plugin from a text file of
// "word<TAB>definition" lines: make_words_db WORDS.txt OUT.db (replaces OUT.db).
#include <sqlite3.h>

#include <cstdio>
#include <fstream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_words_db WORDS.txt OUT.db\n");
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::fprintf(stderr, "make_words_db: cannot read %s\n", argv[1]);
    return 1;
  }
  std::remove(argv[2]);
  sqlite3* db = nullptr;
  if (sqlite3_open(argv[2], &db) != SQLITE_OK) {
    std::fprintf(stderr, "make_words_db: %s: %s\n", argv[2], sqlite3_errmsg(db));
    return 1;
  }
  char* err = nullptr;
  if (sqlite3_exec(db, "CREATE TABLE words(word TEXT PRIMARY KEY, definition TEXT NOT NULL); BEGIN;", nullptr,
                   nullptr, &err) != SQLITE_OK) {
    std::fprintf(stderr, "make_words_db: %s\n", err);
    return 1;
  }
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO words VALUES (?1, ?2)", -1, &ins, nullptr);
  std::string line;
  int lineno = 0, rows = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    auto tab = line.find('\t');
    if (tab == std::string::npos) {
      std::fprintf(stderr, "%s:%d: expected WORD<TAB>DEFINITION\n", argv[1], lineno);
      return 1;
    }
    sqlite3_bind_text(ins, 1, line.data(), static_cast<int>(tab), SQLITE_TRANSIENT);
    sqlite3_bind_text(ins, 2, line.data() + tab + 1, static_cast<int>(line.size() - tab - 1), SQLITE_TRANSIENT);
    if (sqlite3_step(ins) != SQLITE_DONE) {
      std::fprintf(stderr, "%s:%d: %s\n", argv[1], lineno, sqlite3_errmsg(db));
      return 1;
    }
    sqlite3_reset(ins);
    ++rows;
  }
  sqlite3_finalize(ins);
  sqlite3_exec(db, "COMMIT;", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  std::printf("make_words_db: %d words into %s\n", rows, argv[2]);
  return 0;
}
