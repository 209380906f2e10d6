# shoal_add_plugin(<name> SOURCES ... [LIBRARIES ...])
# The one way to build a task plugin, resource module or shared-data builder, in this
# tree and outside it (after find_package(shoal)): a position-independent MODULE named
# <name>.so, hidden visibility, and -z defs so a plugin that reaches for host symbols
# fails to link instead of failing to load in a worker. A C++ builder (shoal/shared.hpp)
# adds the Boost headers, of the Boost the runtime was built with (Interprocess is
# header-only): find_package(Boost 1.74 REQUIRED) and LIBRARIES Boost::headers.
function(shoal_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBRARIES" ${ARGN})
  # A misspelled keyword would otherwise turn into a source file or be dropped silently.
  if(P_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "shoal_add_plugin(${name}): unexpected arguments: ${P_UNPARSED_ARGUMENTS} "
                        "(takes SOURCES and LIBRARIES)")
  endif()
  if(NOT P_SOURCES)
    message(FATAL_ERROR "shoal_add_plugin(${name}): no SOURCES")
  endif()
  add_library(${name} MODULE ${P_SOURCES})
  target_link_libraries(${name} PRIVATE shoal::sdk ${P_LIBRARIES})
  if(TARGET shoal_options)
    target_link_libraries(${name} PRIVATE shoal_options)
  endif()
  set_target_properties(${name} PROPERTIES PREFIX "" POSITION_INDEPENDENT_CODE ON CXX_VISIBILITY_PRESET hidden
                        C_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  if(DEFINED SHOAL_PLUGIN_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${SHOAL_PLUGIN_OUTPUT_DIRECTORY})
  endif()
  if(NOT SHOAL_SANITIZER)
    target_link_options(${name} PRIVATE -Wl,-z,defs)
  endif()
endfunction()
