//! The order in which the post-data entries after the index builds may run on several
//! connections and still give the database the serial load gives. An entry either names the
//! tables it locks (a foreign key: its table and the one it references), or is a barrier (every
//! other entry: partition index `ATTACH`, triggers, rules, policies, materialized-view
//! refreshes, grants, comments, and any entry whose tables cannot be told for sure).
//!
//! The rules: a barrier starts once everything before it in the file is done, and nothing after
//! it starts before it is done; an entry with tables starts once no running entry shares a
//! table with it. Entries with tables are ones that commute with each other (foreign keys: each
//! adds a constraint of its own name and checks rows nothing of the section changes), so the
//! order among them between two barriers does not change the database; what one depends on
//! (the keys it references, built before; a barrier before it) is done when it starts; and
//! entries that run at once lock disjoint tables, so no two connections ever wait for each
//! other (no deadlock, and no lock wait at all).

use std::collections::HashSet;

/// Barriers given to one connection at once, at most.
const MAX_RUN: usize = 1000;

/// What an entry locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locks {
    /// Runs alone, in its place of the file's order.
    Barrier,
    /// Runs beside entries on other tables: the tables (schema and name, unquoted).
    Tables(Vec<(Vec<u8>, Vec<u8>)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Running,
    Done,
}

/// What a free connection is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run the entries from `i` on, `n` of them, in order (they are marked running): one
    /// entry with tables, or a barrier and the barriers right after it (which would run one
    /// after the other anyway).
    Start(usize, usize),
    /// Nothing may start before a running entry ends.
    Wait,
    /// Every entry was started.
    Done,
}

pub struct Schedule {
    locks: Vec<Locks>,
    status: Vec<Status>,
    /// Entries before this one are all done.
    first: usize,
}

impl Schedule {
    pub fn new(locks: Vec<Locks>) -> Schedule {
        let status = vec![Status::Waiting; locks.len()];
        Schedule {
            locks,
            status,
            first: 0,
        }
    }

    /// The first waiting entry that may start now, marked running.
    pub fn next(&mut self) -> Next {
        while self.first < self.status.len() && self.status[self.first] == Status::Done {
            self.first += 1;
        }
        // Nothing starts after a waiting barrier, so the entries from `first` to the first
        // barrier are all that may be running or start.
        let end = (self.first..self.locks.len())
            .find(|&i| self.locks[i] == Locks::Barrier && self.status[i] != Status::Done)
            .unwrap_or(self.locks.len());
        if end < self.locks.len() && end == self.first {
            if self.status[end] == Status::Running {
                return Next::Wait;
            }
            let n = self.locks[end..]
                .iter()
                .take(MAX_RUN)
                .take_while(|l| **l == Locks::Barrier)
                .count();
            for s in &mut self.status[end..end + n] {
                *s = Status::Running;
            }
            return Next::Start(end, n);
        }
        let busy: HashSet<&(Vec<u8>, Vec<u8>)> = (self.first..end)
            .filter(|&i| self.status[i] == Status::Running)
            .filter_map(|i| match &self.locks[i] {
                Locks::Tables(t) => Some(t.iter()),
                Locks::Barrier => None,
            })
            .flatten()
            .collect();
        let free = (self.first..end).find(|&i| {
            self.status[i] == Status::Waiting
                && matches!(&self.locks[i], Locks::Tables(t) if t.iter().all(|x| !busy.contains(x)))
        });
        match free {
            Some(i) => {
                self.status[i] = Status::Running;
                Next::Start(i, 1)
            }
            None if self.first < self.locks.len() => Next::Wait,
            None => Next::Done,
        }
    }

    /// Entries `i..i + n` ended.
    pub fn done(&mut self, i: usize, n: usize) {
        for s in &mut self.status[i..i + n] {
            *s = Status::Done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(names: &[&str]) -> Locks {
        Locks::Tables(
            names
                .iter()
                .map(|n| (b"public".to_vec(), n.as_bytes().to_vec()))
                .collect(),
        )
    }

    /// Run a schedule on `n` simulated connections, every entry taking one step: the entries
    /// running at each step.
    fn steps(locks: Vec<Locks>, n: usize) -> Vec<Vec<usize>> {
        let mut s = Schedule::new(locks);
        let mut out = Vec::new();
        loop {
            let mut now = Vec::new();
            while now.len() < n {
                match s.next() {
                    Next::Start(i, n) => now.push((i, n)),
                    Next::Wait | Next::Done => break,
                }
            }
            if now.is_empty() {
                assert_eq!(s.next(), Next::Done);
                return out;
            }
            for &(i, n) in &now {
                s.done(i, n);
            }
            out.push(now.iter().flat_map(|&(i, n)| i..i + n).collect());
        }
    }

    #[test]
    fn keys_on_other_tables_run_at_once_and_keys_sharing_a_table_never() {
        // The chain of the benchmark: t2 -> t1, t3 -> t2, t4 -> t3, t5 -> t4.
        let chain = vec![
            t(&["t2", "t1"]),
            t(&["t3", "t2"]),
            t(&["t4", "t3"]),
            t(&["t5", "t4"]),
        ];
        assert_eq!(steps(chain, 2), vec![vec![0, 2], vec![1, 3]]);
        // Two keys between the same two tables (either order would deadlock if run at once).
        let cycle = vec![t(&["a", "b"]), t(&["b", "a"]), t(&["c", "d"])];
        assert_eq!(steps(cycle, 3), vec![vec![0, 2], vec![1]]);
        // A waiting entry does not hold back later ones on other tables.
        let s = steps(vec![t(&["a", "b"]), t(&["b", "c"]), t(&["c", "d"])], 3);
        assert_eq!(s, vec![vec![0, 2], vec![1]]);
    }

    #[test]
    fn a_barrier_runs_alone_in_its_place() {
        let locks = vec![
            t(&["a", "b"]),
            t(&["c", "d"]),
            Locks::Barrier,
            t(&["e", "f"]),
            t(&["g", "h"]),
            Locks::Barrier,
            Locks::Barrier,
            t(&["a", "b"]),
        ];
        // Barriers in a row go to one connection together.
        assert_eq!(
            steps(locks, 4),
            vec![vec![0, 1], vec![2], vec![3, 4], vec![5, 6], vec![7]]
        );
        assert_eq!(steps(Vec::new(), 2), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn one_connection_runs_the_file_order() {
        let locks = vec![
            t(&["b", "a"]),
            Locks::Barrier,
            t(&["c", "a"]),
            t(&["d", "a"]),
            t(&["e", "f"]),
        ];
        let order: Vec<usize> = steps(locks, 1).into_iter().flatten().collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
    }

    /// Entries on real threads: at no instant do two running entries share a table, every
    /// entry runs once, and entries on other tables did run at the same time.
    #[test]
    fn threads_never_run_two_entries_on_one_table() {
        use std::sync::{Arc, Condvar, Mutex};
        let mut locks = Vec::new();
        for i in 1..60 {
            locks.push(t(&[&format!("t{i}"), &format!("t{}", i - 1)]));
            if i % 20 == 0 {
                locks.push(Locks::Barrier);
            }
        }
        let all = locks.clone();
        let shared = Arc::new((
            Mutex::new((Schedule::new(locks), Vec::<usize>::new())),
            Condvar::new(),
        ));
        let (overlaps, max_at_once, ran) = (
            Arc::new(Mutex::new(0usize)),
            Arc::new(Mutex::new(0usize)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (shared, all) = (shared.clone(), all.clone());
                let (overlaps, max_at_once, ran) =
                    (overlaps.clone(), max_at_once.clone(), ran.clone());
                std::thread::spawn(move || {
                    loop {
                        let (lock, cv) = &*shared;
                        let mut g = lock.lock().unwrap();
                        let i = loop {
                            match g.0.next() {
                                Next::Start(i, 1) => break i,
                                Next::Start(..) => unreachable!("no barriers in a row here"),
                                Next::Wait => g = cv.wait(g).unwrap(),
                                Next::Done => return,
                            }
                        };
                        let clash = g.1.iter().any(|&r| match (&all[r], &all[i]) {
                            (Locks::Tables(a), Locks::Tables(b)) => a.iter().any(|x| b.contains(x)),
                            _ => true,
                        });
                        *overlaps.lock().unwrap() += usize::from(clash);
                        g.1.push(i);
                        let n = g.1.len();
                        let mut m = max_at_once.lock().unwrap();
                        *m = (*m).max(n);
                        drop(m);
                        drop(g);
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        ran.lock().unwrap().push(i);
                        let mut g = lock.lock().unwrap();
                        g.1.retain(|&r| r != i);
                        g.0.done(i, 1);
                        cv.notify_all();
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(*overlaps.lock().unwrap(), 0);
        assert!(*max_at_once.lock().unwrap() >= 2);
        let mut ran = ran.lock().unwrap().clone();
        ran.sort();
        assert_eq!(ran, (0..all.len()).collect::<Vec<_>>());
    }
}
