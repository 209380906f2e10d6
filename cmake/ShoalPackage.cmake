# What an installed shoal has beyond the programs, the library and the SDK
# (ShoalInstall.cmake): man pages, bash completion, the systemd unit and the docs; and the
# .deb that carries all of it: `cpack -G DEB` (or `cmake --build build --target package`)
# in the build folder. Version: project(VERSION) only.

# Man pages, from the programs' own --help and --version (help2man), so they cannot
# disagree with them. A build without help2man works and installs no man pages.
find_program(SHOAL_HELP2MAN help2man)
if(SHOAL_HELP2MAN)
  set(man_dir ${PROJECT_BINARY_DIR}/man)
  set(man_pages)
  foreach(page IN ITEMS "shoal|run C++ task plugins in a pool of worker processes"
                        "shoal-worker|a worker process of a shoal pool")
    string(REPLACE "|" ";" page "${page}")
    list(GET page 0 program)
    list(GET page 1 summary)
    add_custom_command(OUTPUT ${man_dir}/${program}.1
      COMMAND ${CMAKE_COMMAND} -E make_directory ${man_dir}
      COMMAND ${CMAKE_COMMAND} -DHELP2MAN=${SHOAL_HELP2MAN} -DPROGRAM=$<TARGET_FILE:${program}> -DNAME=${summary}
              -DVERSION=${PROJECT_VERSION}
              -DINCLUDE=${PROJECT_SOURCE_DIR}/packaging/man/${program}.h2m -DOUTPUT=${man_dir}/${program}.1
              -P ${PROJECT_SOURCE_DIR}/packaging/man/help2man.cmake
      DEPENDS ${program} ${PROJECT_SOURCE_DIR}/packaging/man/${program}.h2m
              ${PROJECT_SOURCE_DIR}/packaging/man/help2man.cmake
      COMMENT "Writing the man page ${program}.1"
      VERBATIM)
    list(APPEND man_pages ${man_dir}/${program}.1)
  endforeach()
  add_custom_target(shoal_man_pages ALL DEPENDS ${man_pages})
  install(FILES ${man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(WARNING "help2man not found: the man pages shoal.1 and shoal-worker.1 are not built, "
                  "installed or packaged, and the package test fails (scripts/setup.sh installs help2man)")
endif()

install(FILES ${PROJECT_SOURCE_DIR}/packaging/bash-completion/shoal
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)

# The unit names the installed shoal by its absolute path, which is known only when the
# install runs: `cmake --install --prefix P` and cpack (which installs into a staging
# folder under CPACK_PACKAGING_INSTALL_PREFIX, see CPACK_SET_DESTDIR below) both set it
# then. One copy per prefix, so concurrent installs to different prefixes do not share one.
foreach(dir BINDIR DOCDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(unit_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(unit_${dir} "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
install(CODE "
  set(SHOAL_BINDIR \"${unit_BINDIR}\")
  set(SHOAL_DOCDIR \"${unit_DOCDIR}\")
  string(MD5 unit_tag \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
  set(unit \"${PROJECT_BINARY_DIR}/systemd/\${unit_tag}/shoal-serve@.service\")
  configure_file(\"${PROJECT_SOURCE_DIR}/packaging/systemd/shoal-serve@.service.in\" \"\${unit}\" @ONLY)
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\" TYPE FILE FILES \"\${unit}\")
  file(REMOVE_RECURSE \"${PROJECT_BINARY_DIR}/systemd/\${unit_tag}\")
")

# The docs keep the source tree's layout, so the README's links hold.
install(FILES README.md CHANGELOG.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)
install(FILES config/reference.md DESTINATION ${CMAKE_INSTALL_DOCDIR}/config)
install(DIRECTORY config/examples DESTINATION ${CMAKE_INSTALL_DOCDIR}/config)
install(FILES docs/cli.md DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)
install(DIRECTORY sdk/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/sdk/docs)

# The .deb: one package with the programs, libshoal, the SDK and the docs.
set(SHOAL_PACKAGE_MAINTAINER "the shoal authors" CACHE STRING "The Maintainer field of the .deb")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME shoal)
set(CPACK_PACKAGE_VENDOR "the shoal authors")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "process-pool runtime for C++ task plugins")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "A host starts a pool of worker processes; each loads a task plugin (a .so with a small
C ABI) once and runs many tasks that reach it through shared memory. Every task gets
exactly one outcome, whatever happens to the worker that held it.
.
This package has the shoal and shoal-worker programs, the shoal-serve@ systemd unit,
the host library libshoal, and the plugin SDK (C and C++ headers, a CMake package and
shoal.pc).")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SHOAL_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "redis-server, g++, cmake, pkg-config")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# The install scripts see the package's own prefix (/usr) as CMAKE_INSTALL_PREFIX and
# the staging folder as DESTDIR: the unit's ExecStart must name /usr/bin/shoal.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
include(CPack)
