# The two commands of the README: `make run` and `make test`. Everything else is a step of those.
.PHONY: deps build build-debug build-tsan run test test-unit test-debug bench format clean

JOBS ?= $(shell nproc)

deps:
	@scripts/install-deps

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

build-debug: deps
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug -j $(JOBS)

# ThreadSanitizer: the libraries, the binary and the tests that run threads (tests/CMakeLists.txt).
build-tsan: deps
	@cmake --preset tsan >/dev/null
	@cmake --build --preset tsan -j $(JOBS)

# Embedded mode on 127.0.0.1:8080 with --dev; prints an example to paste.
run: build
	@mkdir -p run
	build/redpacket serve --dev --data-dir run/dev-data

# Every test: unit, end-to-end and real-service tests on the release build, then the unit and
# end-to-end tests under AddressSanitizer + UndefinedBehaviorSanitizer, then the tests that run
# threads (unit and end-to-end) under ThreadSanitizer.
test: build build-debug build-tsan
	ctest --preset release -j $(JOBS)
	ctest --preset debug -j $(JOBS)
	ctest --preset tsan -j $(JOBS)

test-unit: build
	ctest --preset release -L unit -j $(JOBS)

bench: build
	bench/run-bench

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build
