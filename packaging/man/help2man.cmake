# cmake -DHELP2MAN=... -DPROGRAM=... -DNAME=... -DVERSION=... -DINCLUDE=... -DOUTPUT=... -P help2man.cmake
# Writes PROGRAM's man page from its --help and --version with help2man, plus INCLUDE
# (help2man's [SECTION] format). For `shoal`, each command's own help (`shoal help
# COMMAND`, for the commands its --help lists) becomes a section of the page too, so the
# page says everything --help says and nothing more.
foreach(var HELP2MAN PROGRAM NAME VERSION INCLUDE OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "help2man.cmake: ${var} is not set")
  endif()
endforeach()
get_filename_component(out_dir "${OUTPUT}" DIRECTORY)
get_filename_component(out_name "${OUTPUT}" NAME)
file(READ "${INCLUDE}" extra)

execute_process(COMMAND "${PROGRAM}" --help OUTPUT_VARIABLE usage RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} --help failed (${rc})")
endif()

# roff: a backslash is \e, a minus \- (a bare - may print as a hyphen, which breaks a
# copied option); a line starting with . or ' would be a request, one starting with [ or /
# a section or pattern of help2man's include format.
function(roff_escape var text)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REPLACE "-" "\\-" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'[/])" "\\1\\\\&\\2" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

# The help is laid out for a terminal already (aligned columns, wrapped lines), which
# help2man's own parsing of options would rewrap: the synopsis is the Usage lines, the
# description the rest of the help as it is.
string(REGEX MATCH "^Usage: ([^\n]*\n)(( +[^ \n][^\n]*\n)*)\n?" head "${usage}")
if(head STREQUAL "")
  message(FATAL_ERROR "${PROGRAM} --help does not start with 'Usage: '")
endif()
string(LENGTH "${head}" head_length)
string(SUBSTRING "${usage}" ${head_length} -1 body)
string(REGEX REPLACE "\n +" "\n" synopsis "${CMAKE_MATCH_1}${CMAKE_MATCH_2}")
string(STRIP "${synopsis}" synopsis)
roff_escape(synopsis "${synopsis}")
string(REPLACE "\n" "\n.br\n" synopsis "${synopsis}")
roff_escape(body "${body}")
set(extra "[SYNOPSIS]\n${synopsis}\n\n[=DESCRIPTION]\n.nf\n${body}.fi\n\n${extra}")

# The lines under "Commands:" up to the next heading; a command is a line's first word.
string(REGEX MATCH "\nCommands:\n(([ ][^\n]*\n)*)" block "${usage}")
string(REGEX MATCHALL "\n  [a-z]+" names "\n${CMAKE_MATCH_1}")
foreach(name IN LISTS names)
  string(STRIP "${name}" name)
  if(name STREQUAL "help")
    continue()
  endif()
  execute_process(COMMAND "${PROGRAM}" help ${name} OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${PROGRAM} help ${name} failed (${rc})")
  endif()
  roff_escape(text "${text}")
  string(TOUPPER "${name}" title)
  string(APPEND extra "[COMMAND ${title}]\n.nf\n${text}.fi\n\n")
endforeach()

set(include_file "${out_dir}/${out_name}.h2m")
file(WRITE "${include_file}" "${extra}")
execute_process(COMMAND "${HELP2MAN}" --no-info --section=1 "--name=${NAME}" "--version-string=${VERSION}"
                        "--include=${include_file}"
                        "--output=${OUTPUT}" "${PROGRAM}"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "help2man failed for ${PROGRAM} (${rc})")
endif()
