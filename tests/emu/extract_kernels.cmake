# tests/emu/extract_kernels.cmake — cuts the kernel part of a .cu file into an include file for a CPU
# emulation test (tests/emu/*_emu.cpp, on tests/emu/emu_warp.h). Runs at build time (each emu target's
# custom command), so the emulator always compiles the current kernel source.
#
#   cmake -DSRC=src/kernels/cuda/attention.cu -DOUT=/tmp/emu/attention_kernels.inc -P tests/emu/extract_kernels.cmake
#
# Kept: the text in [BEGIN1, END1) and in [BEGIN2, END2). The defaults are attention.cu's: from
# "#define PT_FA_BM" up to the "device helpers" banner (constants, pt_fa_params), and from
# "/* Register tiles of one warp" up to the "launchers" banner (tile helpers and the four kernels); the
# dropped "device helpers" section #includes the inline-PTX helpers of pt_mma.cuh (the emulator defines
# its own pt_mma_cp16 / ldsm / m16n8k16 / pack). Other files pass their markers: -DBEGIN1= -DEND1=
# -DBEGIN2= -DEND2= (linear_act.cu, fused_norm.cu: CMakeLists.txt); -DBEGIN2= (empty) keeps one part.
# A missing marker is an error naming it: update the markers and the .cu file together.
#
# Rewritten for the emulator (every file; nothing else is touched):
#   `name<targs><<<grid, block[, smem[, stream]]>>>(args)` (launches inside kept launchers)
#       -> `pt_emu_launch_kernel(name<targs>, "name<targs>", grid, block[, smem[, stream]])(args)`;
#       a `<<<` not preceded by a plain name with optional template arguments is an error
#   `extern __shared__` -> `extern` (the dynamic shared memory array is emu_warp.h's PT_EMU_SMEM)
#   `__shared__ T name[N];` -> `static T name[N]; pt_emu_shared_note(&name, sizeof name);` (NaN-filled
#       at its first use in each block); a __shared__ left over (another form) is an error
#
# Manual mutation check (shows the test catches a one-character bug): add
#   -DMUTATE_FROM="diag && col > row" -DMUTATE_TO="diag && col >= row"
# and every occurrence of MUTATE_FROM in the extracted source text is replaced before the rewrites (an
# error if there is none).
if(NOT SRC OR NOT OUT)
  message(FATAL_ERROR "extract_kernels.cmake: pass -DSRC=<attention.cu> -DOUT=<include file to write>")
endif()
file(READ "${SRC}" text)

function(pt_emu_find out marker)
  string(FIND "${text}" "${marker}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "extract_kernels.cmake: marker '${marker}' not found in ${SRC}; the emulator "
                        "extracts the kernels between fixed markers, update tests/emu/extract_kernels.cmake")
  endif()
  set(${out} ${pos} PARENT_SCOPE)
endfunction()

if(NOT DEFINED BEGIN1)
  set(BEGIN1 "#define PT_FA_BM")
endif()
if(NOT DEFINED END1)
  set(END1 "/* ---------------------------------------------------------------- device helpers */")
endif()
if(NOT DEFINED BEGIN2)
  set(BEGIN2 "/* Register tiles of one warp")
endif()
if(NOT DEFINED END2)
  set(END2 "/* ---------------------------------------------------------------- launchers */")
endif()
pt_emu_find(a "${BEGIN1}")
pt_emu_find(b "${END1}")
if(BEGIN2 STREQUAL "")
  if(NOT a LESS b)
    message(FATAL_ERROR "extract_kernels.cmake: markers of ${SRC} out of order (${a} ${b})")
  endif()
  set(part2 "")
else()
  pt_emu_find(c "${BEGIN2}")
  pt_emu_find(d "${END2}")
  if(NOT (a LESS b AND b LESS c AND c LESS d))
    message(FATAL_ERROR "extract_kernels.cmake: markers of ${SRC} out of order (${a} ${b} ${c} ${d})")
  endif()
  math(EXPR len2 "${d} - ${c}")
  string(SUBSTRING "${text}" ${c} ${len2} part2)
endif()
math(EXPR len1 "${b} - ${a}")
string(SUBSTRING "${text}" ${a} ${len1} part1)
set(body "${part1}${part2}")

if(DEFINED MUTATE_FROM)
  string(FIND "${body}" "${MUTATE_FROM}" mpos)
  if(mpos EQUAL -1)
    message(FATAL_ERROR "extract_kernels.cmake: MUTATE_FROM '${MUTATE_FROM}' does not occur in the kernels")
  endif()
  string(REPLACE "${MUTATE_FROM}" "${MUTATE_TO}" body "${body}")
  message(STATUS "extract_kernels.cmake: MUTATED '${MUTATE_FROM}' -> '${MUTATE_TO}'")
endif()

# ---- launches
string(REGEX MATCHALL "<<<" opens "${body}")
string(REGEX MATCHALL ">>>" closes "${body}")
list(LENGTH opens nopen)
list(LENGTH closes nclose)
if(NOT nopen EQUAL nclose)
  message(FATAL_ERROR "extract_kernels.cmake: ${SRC} has ${nopen} '<<<' but ${nclose} '>>>' in the kept text")
endif()
# with template arguments, then without (CMake cannot refer to an optional group that did not match)
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*<[^<>;\r\n]*>)[ \t\r\n]*<<<" "pt_emu_launch_kernel(\\1, \"\\1\", "
       body "${body}")
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*)[ \t\r\n]*<<<" "pt_emu_launch_kernel(\\1, \"\\1\", " body "${body}")
string(FIND "${body}" "<<<" left)
if(NOT left EQUAL -1)
  string(SUBSTRING "${body}" ${left} 80 what)
  message(FATAL_ERROR "extract_kernels.cmake: a launch in ${SRC} the emulator cannot rewrite (write it as "
                      "name<targs><<<...>>>(...)): '${what}'")
endif()
string(REPLACE ">>>" ")" body "${body}")

# ---- shared memory
string(REPLACE "extern __shared__" "extern" body "${body}")
string(REGEX REPLACE "__shared__[ \t]+([^;]*[^A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)[ \t]*(\\[[^;]*\\])?[ \t]*;"
       "static \\1\\2\\3; pt_emu_shared_note(&\\2, sizeof \\2);" body "${body}")
string(FIND "${body}" "__shared__" left)
if(NOT left EQUAL -1)
  string(SUBSTRING "${body}" ${left} 80 what)
  message(FATAL_ERROR "extract_kernels.cmake: a __shared__ declaration in ${SRC} the emulator cannot rewrite "
                      "(write it as __shared__ T name[N];): '${what}'")
endif()

file(WRITE "${OUT}" "/* generated by tests/emu/extract_kernels.cmake from ${SRC}; do not edit */\n${body}")
