# What `cmake --install` puts beside the SDK (sdk/CMakeLists.txt installs the plugin
# headers and the CMake package): the host library libshoal with its headers, the `shoal`
# and `shoal-worker` programs, and shoal.pc. Everything lands in one export set, so
# find_package(shoal) gives shoal::sdk, shoal::runtime, shoal::shoal and shoal::worker.
set_target_properties(shoal-worker PROPERTIES EXPORT_NAME worker)
install(TARGETS shoal_runtime shoal shoal-worker EXPORT shoalTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# shoal.pc finds its prefix from its own location (${pcfiledir}), so it stays right under
# `cmake --install --prefix OTHER` and in a relocated tree, as the CMake package does.
function(shoal_pc_dir var dir)
  if(IS_ABSOLUTE "${dir}")
    set(${var} "${dir}" PARENT_SCOPE)
  else()
    set(${var} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(SHOAL_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" up "${up}")
  set(SHOAL_PC_PREFIX "\${pcfiledir}/${up}")
endif()
shoal_pc_dir(SHOAL_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
shoal_pc_dir(SHOAL_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
shoal_pc_dir(SHOAL_PC_BINDIR "${CMAKE_INSTALL_BINDIR}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/shoal.pc.in ${PROJECT_BINARY_DIR}/shoal.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/shoal.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
