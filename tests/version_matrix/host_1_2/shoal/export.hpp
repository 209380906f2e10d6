// File: shoal/export.hpp
//
// SHOAL_API marks what libshoal.so.1 exports. The library is built with hidden
// visibility and a version script (runtime/libshoal.map, node SHOAL_1.0): a name without
// the mark stays inside the library, so a host cannot come to depend on it and a later
// 1.x can change it. Adding the mark adds to what SOVERSION 1 promises for good; the
// export-list test (tests/abi/libshoal_exports.txt) makes that a reviewed change.
#ifndef SHOAL_EXPORT_HPP
#define SHOAL_EXPORT_HPP

#define SHOAL_API __attribute__((visibility("default")))

#endif  // SHOAL_EXPORT_HPP
