#pragma once
#include <cblas.h>
// glibc's mallopt: the numeric core keeps large freed blocks in the heap (see Parallel.swift).
#if defined(__GLIBC__) || defined(__linux__)
#include <malloc.h>
#endif
