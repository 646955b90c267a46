use ipc_process::{Pool, Process, StartMethod, TaskError};

fn double(x: u64) -> u64 {
    x * 2
}

fn fallible(x: i32) -> Result<i32, String> {
    if x < 0 { Err(format!("negative: {x}")) } else { Ok(x + 1) }
}

fn boom(msg: String) -> u32 {
    panic!("{msg}")
}

#[test]
fn spawn_returns_value() {
    let mut p = Process::spawn(double, 21).unwrap();
    assert_eq!(p.join().unwrap(), 42);
}

#[test]
fn forkserver_returns_value() {
    let mut p = Process::start(StartMethod::ForkServer, double, 4).unwrap();
    assert_eq!(p.join().unwrap(), 8);
}

#[test]
fn err_and_panic() {
    let mut p = Process::spawn(fallible, -3).unwrap();
    assert!(matches!(p.join(), Err(TaskError::Failed(e)) if e == "negative: -3"));
    let mut p = Process::spawn(boom, "kaput".to_owned()).unwrap();
    match p.join() {
        Err(TaskError::Panicked(p)) => assert_eq!(p.message, "kaput"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pool_map() {
    let pool = Pool::new(2).unwrap();
    let v = pool.map(double, 0..1000u64).unwrap();
    assert_eq!(v, (0..1000u64).map(|x| x * 2).collect::<Vec<_>>());
    assert_eq!(pool.apply(fallible, 1).unwrap(), 2);
}

#[test]
fn huge_timeouts_saturate() {
    let mut p = Process::spawn(double, 1).unwrap();
    assert_eq!(p.join_timeout(std::time::Duration::MAX).unwrap().unwrap(), 2);
    let pool = Pool::builder()
        .workers(1)
        .task_timeout(std::time::Duration::MAX)
        .startup_timeout(std::time::Duration::MAX)
        .build()
        .unwrap();
    let mut h = pool.submit(double, 4).unwrap();
    assert_eq!(h.wait_timeout(std::time::Duration::MAX).unwrap().unwrap(), 8);
    pool.close();
    assert!(pool.join_timeout(std::time::Duration::MAX).unwrap());
}

#[test]
fn handles_are_refused_in_map_items() {
    let pool = Pool::new(1).unwrap();
    let shm = ipc_shm::Shm::anonymous(64).unwrap();
    let items = vec![ipc_process::Handle::share(&shm).unwrap()];
    match pool.map(takes_shm, items) {
        Err(TaskError::Lost(ipc_process::Error::CannotTransfer { .. })) => {}
        other => panic!("{other:?}"),
    }
}

fn takes_shm(s: ipc_process::Handle<ipc_shm::Shm>) -> usize {
    s.len()
}
