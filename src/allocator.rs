//! The C allocator's arenas. glibc's `malloc` gives threads that allocate at the same moment
//! arenas of their own, up to eight for each core, and every arena keeps what was freed in it.
//! Over a burst the daemon's blocking pool (parsing, routing, composing, writing files) runs many
//! threads, so its peak memory grew with the arenas rather than with the work: 138.6–140.2 MiB
//! (VmHWM) over the Maildir benchmark's 10,000 mails, against 99.9–102.3 MiB with two arenas, at
//! the same rate (BENCHMARKS.md, "The allocator's arenas"). The daemon therefore allows
//! one arena per core (at least two), unless the operator set `MALLOC_ARENA_MAX`, which glibc
//! reads itself.

/// How many arenas to allow on `cores` cores; `None` leaves glibc's setting alone (the operator
/// set `MALLOC_ARENA_MAX`).
pub fn arena_limit(operator_set: bool, cores: usize) -> Option<i32> {
    (!operator_set).then(|| i32::try_from(cores.max(2)).unwrap_or(i32::MAX))
}

/// Applies [`arena_limit`] to this process: glibc on Linux; elsewhere nothing. `main` calls it
/// first thing, while the process has one thread.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        if let Some(arenas) = arena_limit(std::env::var_os("MALLOC_ARENA_MAX").is_some(), cores) {
            // SAFETY: `mallopt` sets one of the allocator's parameters and touches no memory of
            // ours; it is called before any other thread exists, so no allocation runs beside it.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, arenas);
            }
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
}
