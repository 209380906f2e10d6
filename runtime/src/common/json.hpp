// JSON text for outcomes: the CLI's output lines and, later, the Redis results stream
// write the same bytes, so a collector parses one format whatever produced it.
#ifndef SHOAL_COMMON_JSON_HPP
#define SHOAL_COMMON_JSON_HPP

#include <shoal/runtime.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace shoal::detail {

/// Appends `bytes` to `out` as a JSON string literal, quotes included. Valid UTF-8 passes
/// through unchanged; `"`, `\` and control characters are escaped; every byte that is not
/// part of a well-formed UTF-8 sequence (stray continuation, truncated or overlong form,
/// surrogate, above U+10FFFF) becomes \ufffd, so the result is always valid JSON.
void append_json_string(std::string& out, std::string_view bytes);

/// One outcome as a single-line JSON object, keys in this order:
/// {"seq":N,"status":"ok","output":"...","error":null|"...","worker":N|null,"attempts":N,"ms":F,
///  "reason":null|"..."}
/// `error` is null when empty, `worker` null when -1, `ms` the duration in milliseconds
/// with three decimals, `reason` Outcome::reason's word (null for Reason::none). New keys
/// go at the end. No trailing newline.
std::string outcome_json(uint64_t seq, const Outcome& outcome);

/// Same as outcome_json, appended to `out` (saves an allocation per line in a stream).
void append_outcome_json(std::string& out, uint64_t seq, const Outcome& outcome);

/// The same row for an outcome seen in place (Pool::map_views): the output is escaped
/// straight from the result ring, with no Outcome and no copy in between.
void append_outcome_json(std::string& out, uint64_t seq, const OutcomeView& outcome);

}  // namespace shoal::detail

#endif
