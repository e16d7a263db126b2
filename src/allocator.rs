//! The daemon's memory: its allocator, the allocator's options, and how many threads the blocking
//! pool may run (each thread that allocates holds memory of its own).
//!
//! `main` allocates with mimalloc (`#[global_allocator]`): glibc's `malloc` shares one arena per
//! core among threads, and over the Maildir benchmark's burst about 8 % of the daemon's samples were
//! threads waiting for an arena's lock; mimalloc gives each thread its own heap (BENCHMARKS.md,
//! "Routing a long mail; the allocator once more"). Heaps of their own would hold memory in every
//! thread, so the pool is bounded ([`blocking_threads`]; no task in it waits for another, see
//! `pipeline::behind`) and mimalloc returns freed memory at once and commits its arenas on
//! demand ([`configure`]). glibc's arenas stay bounded too, one per core: C code (SQLite)
//! allocates with `malloc`.

/// The blocking pool's threads at most on `cores` cores: four per core, at least eight. Its tasks
/// (a batch's parsing ahead of the writer and composing behind it, files written and read) use a
/// core each while they run, and none waits for another task.
pub fn blocking_threads(cores: usize) -> usize {
    (4 * cores).max(8)
}

/// How many glibc arenas to allow on `cores` cores; `None` leaves glibc's setting alone (the
/// operator set `MALLOC_ARENA_MAX`).
pub fn arena_limit(operator_set: bool, cores: usize) -> Option<i32> {
    (!operator_set).then(|| i32::try_from(cores.max(2)).unwrap_or(i32::MAX))
}

/// mimalloc 3's option numbers (`mi_option_t` in its `mimalloc.h`; `libmimalloc-sys`'s own
/// constants follow mimalloc 2). The test below reads their defaults back from the linked
/// library.
const MI_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// Sets this process's allocators up: mimalloc returns freed memory at once and commits arenas
/// on demand, unless the operator set `MIMALLOC_PURGE_DELAY` or `MIMALLOC_ARENA_EAGER_COMMIT`
/// (which mimalloc reads itself); glibc gets [`arena_limit`]. `main` calls it first thing, while
/// the process has one thread.
pub fn configure() {
    let set = |name: &str| std::env::var_os(name).is_some();
    for (option, value, name) in
        [(MI_PURGE_DELAY, 0, "MIMALLOC_PURGE_DELAY"), (MI_ARENA_EAGER_COMMIT, 0, "MIMALLOC_ARENA_EAGER_COMMIT")]
    {
        if !set(name) {
            // SAFETY: `mi_option_set` stores one of mimalloc's option values; it touches no
            // memory of ours, and the option numbers are mimalloc 3's (checked by a test).
            unsafe { libmimalloc_sys::mi_option_set(option, value) }
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if let Some(arenas) = arena_limit(set("MALLOC_ARENA_MAX"), cores()) {
        // SAFETY: `mallopt` sets one of the allocator's parameters and touches no memory of
        // ours; it is called before any other thread exists, so no allocation runs beside it.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_arena_per_core_at_least_two_unless_the_operator_chose() {
        assert_eq!(arena_limit(false, 1), Some(2));
        assert_eq!(arena_limit(false, 2), Some(2));
        assert_eq!(arena_limit(false, 16), Some(16));
        assert_eq!(arena_limit(true, 16), None, "MALLOC_ARENA_MAX is the operator's");
    }

    #[test]
    fn the_blocking_pool_has_four_threads_a_core_at_least_eight() {
        assert_eq!(blocking_threads(1), 8);
        assert_eq!(blocking_threads(2), 8);
        assert_eq!(blocking_threads(16), 64);
    }

    #[test]
    fn the_option_numbers_are_the_linked_mimallocs() {
        // Their defaults in the linked mimalloc's `options.c` (purge_delay 1000 ms, arena_eager_commit
        // 2: on Linux), read back under those numbers; nothing in the tests calls `configure`.
        // SAFETY: reading an option touches no memory of ours.
        let (purge, eager) = unsafe {
            (libmimalloc_sys::mi_option_get(MI_PURGE_DELAY), libmimalloc_sys::mi_option_get(MI_ARENA_EAGER_COMMIT))
        };
        assert_eq!((purge, eager), (1000, 2));
    }
}
