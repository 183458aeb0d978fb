# repro: build, test, bench, demo.
# Sources are found by wildcard so that adding a module never means editing this file:
#   harness/*/*.c, plugins/*/*.c, runners/*.c -> build/<lua>/librepro.a (everything but harness/cli/main.c)
#   tests/test_*.c                    -> build/<lua>/tests/test_*  (each has its own main)
#   bench/bench_*.c                   -> build/<lua>/bench/bench_*
#   RP_COMMAND(...) lines in harness/*/cmd_*.c, plugins/*/cmd_*.c -> the CLI's command table
#   RP_LUA_MODULE(...) lines in harness/lua/l_*.c, plugins/*/l_*.c  -> the Lua host's module table
# LUA=lua5.4 (default) or LUA=luajit builds the same host on either runtime.

LUA ?= lua5.4
ifeq ($(LUA),luajit)
  LUA_PC := luajit
  LUA_DEF := -DRP_LUAJIT=1
else
  LUA_PC := lua5.4
  LUA_DEF :=
endif

# SAN=1: AddressSanitizer + UBSan build (make SAN=1 test); its binaries carry an -asan suffix.
SAN ?=
BUILD := build/$(LUA)$(if $(SAN),-asan,)
CC ?= cc
OPT ?= -O2
ARCH ?= -march=native
WARN := -Wall -Wextra -Werror -Wno-unused-parameter
DEPS_PC := $(LUA_PC) sqlite3 libcurl openblas zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(DEPS_PC) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(DEPS_PC) 2>/dev/null)
CFLAGS += -std=gnu11 $(OPT) $(ARCH) -g -fno-math-errno $(WARN) -pthread -Iharness -I. $(PKG_CFLAGS) $(LUA_DEF)
LDLIBS += $(PKG_LIBS) -lm -ldl -pthread
ifneq ($(SAN),)
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDLIBS += -fsanitize=address,undefined
endif

# CUDA=1 (the default whenever nvcc is found; CUDA=0 turns it off): the CUDA backend's kernels
# (harness/tensor/cuda/*.cu, sm_90 code plus compute_90 PTX for newer GPUs) join the library, RP_CUDA is
# defined for its C shim, and the binaries link cudart and cuBLAS. Without nvcc the build is unchanged.
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard /usr/local/cuda/bin/nvcc))
CUDA ?= $(if $(NVCC),1,0)
CU_OBJ :=
ifeq ($(CUDA),1)
  ifeq ($(NVCC),)
    $(error CUDA=1 but nvcc was not found: set NVCC=/path/to/nvcc)
  endif
  CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(NVCC)))
  CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
  NVCCFLAGS ?= -std=c++17 -O2 -lineinfo $(CUDA_ARCH) -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror,-Wno-unused-parameter
  CU_OBJ := $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(wildcard harness/tensor/cuda/*.cu))
  CFLAGS += -DRP_CUDA=1
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif

LIB_SRC := $(filter-out harness/cli/main.c,$(wildcard harness/*/*.c plugins/*/*.c runners/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(CU_OBJ)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
BENCH_SRC := $(wildcard bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
REPRO := bin/repro$(if $(filter luajit,$(LUA)),-luajit,)$(if $(SAN),-asan,)

MIRROR_DEFAULT := $(abspath ../shared/data)
export REPRO_MIRROR ?= $(if $(wildcard $(MIRROR_DEFAULT)),$(MIRROR_DEFAULT),)
export OPENBLAS_CORETYPE ?= Haswell
export REPRO_BIN := $(abspath $(REPRO))

.PHONY: all test test-suite bench demo deps clean fuzz valgrind gpu-check
.SECONDARY:
all: $(REPRO) $(TEST_BIN) $(FUZZ_REPLAY)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -Iharness -I. -MMD -MP -c $< -o $@

$(BUILD)/generated/commands.inc: $(wildcard harness/*/cmd_*.c plugins/*/cmd_*.c)
	@mkdir -p $(dir $@)
	@cat /dev/null $^ | grep -h '^RP_COMMAND(' | LC_ALL=C sort > $@.tmp || true; mv $@.tmp $@
$(BUILD)/generated/lua_modules.inc: $(wildcard harness/lua/l_*.c plugins/*/l_*.c)
	@mkdir -p $(dir $@)
	@cat /dev/null $^ | grep -h '^RP_LUA_MODULE(' > $@.tmp || true; mv $@.tmp $@
# Task files (one JSON per task) embedded into the task registry; the asset catalog's C copy of its JSON.
$(BUILD)/generated/tasks_builtin.inc: harness/eval/embed_tasks.py $(wildcard harness/eval/tasks/*.json)
	@mkdir -p $(dir $@)
	python3 harness/eval/embed_tasks.py $@ $(wildcard harness/eval/tasks/*.json)
$(BUILD)/obj/harness/eval/tasks_load.o: $(BUILD)/generated/tasks_builtin.inc
harness/assets/catalog_data.c: harness/assets/catalog.json harness/assets/make_catalog.py
	python3 harness/assets/make_catalog.py --embed-only
$(BUILD)/generated/commands_table.inc: $(BUILD)/generated/commands.inc
	@sed -e 's/;[[:space:]]*$$/,/' $< > $@
# The build id: rewritten only when `git describe` changes, so only its two users recompile.
$(BUILD)/generated/build_id.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define RP_GIT_DESCRIBE "$(shell git describe --always --dirty 2>/dev/null || echo unknown)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@
.PHONY: FORCE
$(BUILD)/obj/harness/cli/main.o $(BUILD)/obj/harness/cli/provenance.o $(BUILD)/obj/harness/net/http.o: $(BUILD)/generated/build_id.h
$(BUILD)/obj/harness/cli/commands.o: $(BUILD)/generated/commands.inc $(BUILD)/generated/commands_table.inc
$(BUILD)/obj/harness/lua/modules.o: $(BUILD)/generated/lua_modules.inc
CFLAGS += -I$(BUILD)/generated

$(BUILD)/librepro.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(REPRO): $(BUILD)/obj/harness/cli/main.o $(BUILD)/librepro.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(BUILD)/librepro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
# Fuzz targets built with a replay main: CI runs the kept corpus and crashers as regression tests.
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/obj/tests/fuzz/replay_main.o $(BUILD)/librepro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
# Coverage-guided fuzzing with libFuzzer + ASan + UBSan: make fuzz FUZZ=gguf FUZZ_SECONDS=600
FUZZ ?= gguf
FUZZ_SECONDS ?= 60
FUZZ_LIB_SRC := $(LIB_SRC)
fuzz: $(BUILD)/generated/build_id.h
	@tools/deps.sh --fuzz
	@mkdir -p build/fuzz-$(FUZZ)/corpus tests/fuzz/corpus/$(FUZZ) tests/fuzz/crashers
	clang -std=gnu11 -g -O1 -march=native -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iharness -I. -I$(BUILD)/generated $(PKG_CFLAGS) $(LUA_DEF) \
	  -o build/fuzz-$(FUZZ)/fuzz tests/fuzz/fuzz_$(FUZZ).c $(FUZZ_LIB_SRC) $(PKG_LIBS) -lm
	build/fuzz-$(FUZZ)/fuzz -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=tests/fuzz/crashers/$(FUZZ)- build/fuzz-$(FUZZ)/corpus tests/fuzz/corpus/$(FUZZ)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BUILD)/librepro.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The README's test command: first the Debian packages the build and the tests use (tools/deps.sh --test),
# then, in a fresh make that sees them, the build and the suite: C unit tests, reference checks, fuzz
# regression corpora, Lua and shell tests; it ends "N passed, N failed, N skipped" with every skip's reason.
test:
	@tools/deps.sh --test
	@$(MAKE) --no-print-directory test-suite
test-suite: $(REPRO) $(TEST_BIN) $(FUZZ_REPLAY)
	@tests/run_all.sh $(BUILD) $(REPRO)

bench: $(REPRO) $(BENCH_BIN)
	@bench/run_all.sh $(BUILD) $(REPRO)

deps:
	@tools/deps.sh

# The CUDA backend's check on a machine with a GPU (build, op tests, model checks, benchmarks; under 5
# minutes): exit 0 passed, 1 a check failed, 2 the build failed, 3 no GPU here (nothing ran on one).
gpu-check:
	@tools/gpu_check.sh

demo: deps
	@$(MAKE) --no-print-directory $(REPRO)
	@$(REPRO) demo

# Valgrind over the C tests (slow; not part of make test).
valgrind: $(TEST_BIN)
	@for t in $(TEST_BIN); do echo "== $$t"; valgrind -q --error-exitcode=99 --leak-check=full $$t >/dev/null || exit 1; done

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(TEST_BIN:$(BUILD)/tests/%=$(BUILD)/obj/tests/%.d) $(BENCH_BIN:$(BUILD)/bench/%=$(BUILD)/obj/bench/%.d)
