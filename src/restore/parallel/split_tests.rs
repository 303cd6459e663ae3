//! Tests of the splitter: sections, blocks of whole rows, the session state of each unit.

use super::*;

#[derive(Default)]
struct Record {
    pre: Vec<u8>,
    pre_done: usize,
    /// Units: the state they start under and their bytes.
    units: Vec<(Arc<State>, Vec<u8>)>,
}

impl Sink for Record {
    fn pre(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        assert_eq!(self.pre_done, 0, "pre-data after its end");
        self.pre.extend_from_slice(bytes);
        Ok(())
    }
    fn pre_done(&mut self) -> std::io::Result<()> {
        self.pre_done += 1;
        Ok(())
    }
    fn data(
        &mut self,
        start: Option<Arc<State>>,
        bytes: Vec<u8>,
        _after: Option<Arc<State>>,
    ) -> std::io::Result<()> {
        match start {
            Some(s) => self.units.push((s, bytes)),
            None => self.units.last_mut().unwrap().1.extend_from_slice(&bytes),
        }
        Ok(())
    }
    fn copy_block(&mut self, state: Arc<State>, block: Vec<u8>) -> std::io::Result<()> {
        self.data(Some(state.clone()), block, Some(state))
    }
}

fn dump(rows: usize) -> Vec<u8> {
    let mut d = b"SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n\
SELECT pg_catalog.set_config('search_path', '', false);\n\
SET default_tablespace = '';\n\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\n\
CREATE TABLE public.t (\n    id integer,\n    v text\n);\n\n\
--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n\
COPY public.t (id, v) FROM stdin;\n"
        .to_vec();
    for i in 0..rows {
        d.extend_from_slice(format!("{i}\trow {i} with a ; and a ' and \\\\.\n").as_bytes());
    }
    d.extend_from_slice(
        b"\\.\n\n\n--\n-- Name: s; Type: SEQUENCE SET; Schema: public; Owner: app\n--\n\n\
SELECT pg_catalog.setval('public.s', 3, true);\n\n\
SET default_tablespace = fast;\n\n\
--\n-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: app\n--\n\n\
ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n\n\
--\n-- Name: t_v; Type: INDEX; Schema: public; Owner: app\n--\n\n\
CREATE INDEX t_v ON public.t USING btree (v);\n\n\
SET default_tablespace = '';\n\n\
--\n-- Name: t t_fk; Type: FK CONSTRAINT; Schema: public; Owner: app\n--\n\n\
ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_fk FOREIGN KEY (id) REFERENCES public.t(id);\n\n\
--\n-- PostgreSQL database dump complete\n--\n\n",
    );
    d
}

fn split(data: &[u8], chunk: usize) -> (Record, Vec<PostEntry>) {
    let mut s = Splitter::new(Record::default(), ScanOptions::default());
    for c in data.chunks(chunk) {
        s.feed(c).unwrap();
    }
    s.finish().unwrap()
}

#[test]
fn sections_go_where_they_run_and_each_unit_keeps_its_state() {
    for chunk in [1, 7, 4096, usize::MAX] {
        let (r, post) = split(&dump(3), chunk.min(1 << 20));
        let pre = String::from_utf8_lossy(&r.pre);
        assert!(pre.starts_with("SET statement_timeout = 0;"), "{pre}");
        assert!(pre.contains("CREATE TABLE public.t"), "{pre}");
        assert!(!pre.contains("COPY"), "{pre}");
        assert_eq!(r.pre_done, 1);
        assert_eq!(r.units.len(), 2, "chunk {chunk}");
        let copy = String::from_utf8_lossy(&r.units[0].1);
        assert_eq!(
            copy,
            "COPY public.t (id, v) FROM stdin;\n0\trow 0 with a ; and a ' and \\\\.\n\
1\trow 1 with a ; and a ' and \\\\.\n2\trow 2 with a ; and a ' and \\\\.\n\\.\n"
        );
        let replay = String::from_utf8_lossy(&r.units[0].0.diff(&State::default())).to_string();
        assert!(
            replay.contains("set_config('search_path', '', false)"),
            "{replay}"
        );
        assert!(replay.contains("SET client_encoding = 'UTF8';"), "{replay}");
        // The settings of the next entry run at the end of this one (the state it leaves).
        assert_eq!(
            String::from_utf8_lossy(&r.units[1].1),
            "SELECT pg_catalog.setval('public.s', 3, true);\nSET default_tablespace = fast;\n"
        );
        let kinds: Vec<(bool, String)> = post
            .iter()
            .map(|e| (e.parallel, String::from_utf8_lossy(&e.bytes).to_string()))
            .collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert!(
            kinds[0].0
                && kinds[0]
                    .1
                    .starts_with("ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey")
        );
        assert!(kinds[1].0 && kinds[1].1.starts_with("CREATE INDEX t_v"));
        assert!(!kinds[2].0 && kinds[2].1.contains("FOREIGN KEY"));
        // The key locks its table only (it references itself); the builds are no barrier
        // either way (they run before).
        assert_eq!(
            post[2].locks,
            Locks::Tables(vec![(b"public".to_vec(), b"t".to_vec())])
        );
        // The index is built in the tablespace set before it, the key after the reset.
        let ts =
            |e: &PostEntry| String::from_utf8_lossy(&e.state.diff(&State::default())).to_string();
        assert!(ts(&post[1]).contains("SET default_tablespace = fast;"));
        assert!(ts(&post[2]).contains("SET default_tablespace = '';"));
    }
}

#[test]
fn a_big_copy_is_cut_into_blocks_of_whole_rows() {
    let data = dump(300_000);
    let (r, _) = split(&data, 64 * 1024);
    let blocks: Vec<&Vec<u8>> = r
        .units
        .iter()
        .map(|(_, b)| b)
        .filter(|b| b.starts_with(b"COPY"))
        .collect();
    assert!(blocks.len() >= 3, "{} blocks", blocks.len());
    let mut rows = 0;
    for b in &blocks {
        assert!(b.len() <= COPY_BLOCK + 64);
        let text = String::from_utf8_lossy(b);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "COPY public.t (id, v) FROM stdin;");
        assert_eq!(*lines.last().unwrap(), "\\.");
        for l in &lines[1..lines.len() - 1] {
            assert!(l.ends_with("and \\\\."), "a cut row: {l}");
            let id: usize = l.split('\t').next().unwrap().parse().unwrap();
            assert_eq!(id, rows);
            rows += 1;
        }
    }
    assert_eq!(rows, 300_000);
}

#[test]
fn without_entry_headers_everything_is_loaded_in_order_on_one_connection() {
    let data =
        b"CREATE TABLE t (a int);\nCOPY t FROM stdin;\n1\n2\n\\.\nCREATE INDEX i ON t (a);\n";
    let (r, post) = split(data, 3);
    assert_eq!(r.pre, data);
    assert_eq!(r.pre_done, 0);
    assert!(r.units.is_empty() && post.is_empty());
}

#[test]
fn entry_types_are_read_from_pg_dumps_headers() {
    assert_eq!(
        header_type(b"\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n").as_deref(),
        Some("TABLE")
    );
    assert_eq!(
        header_type(b"-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app\n")
            .as_deref(),
        Some("TABLE DATA")
    );
    assert_eq!(
        header_type(b"-- Name: a; Type: x; Type: INDEX; Schema: public; Owner: app\n").as_deref(),
        Some("INDEX")
    );
    assert_eq!(header_type(b"-- just a comment; Type: nothing\n"), None);
}

#[test]
fn keys_to_a_partitioned_table_of_the_dump_are_barriers() {
    let data = b"SET client_encoding = 'UTF8';\n\n\
--\n-- Name: p; Type: TABLE; Schema: public; Owner: app\n--\n\n\
CREATE TABLE public.p (\n    id integer NOT NULL,\n    at date NOT NULL\n)\nPARTITION BY RANGE (at);\n\n\
--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\n\
CREATE TABLE public.t (\n    id integer,\n    p_id integer,\n    at date\n);\n\n\
--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n\
COPY public.t (id, p_id, at) FROM stdin;\n1\t1\t2025-01-01\n\\.\n\n\
--\n-- Name: t t_p; Type: FK CONSTRAINT; Schema: public; Owner: app\n--\n\n\
ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_p FOREIGN KEY (p_id, at) REFERENCES public.p(id, at);\n\n\
--\n-- Name: t t_t; Type: FK CONSTRAINT; Schema: public; Owner: app\n--\n\n\
ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_t FOREIGN KEY (p_id) REFERENCES public.t(id);\n\n\
--\n-- Name: t_t ON t; Type: COMMENT; Schema: public; Owner: app\n--\n\n\
COMMENT ON CONSTRAINT t_t ON public.t IS 'x';\n";
    let (_, post) = split(data, 5);
    let locks: Vec<&Locks> = post.iter().map(|e| &e.locks).collect();
    let t = (b"public".to_vec(), b"t".to_vec());
    assert_eq!(
        locks,
        vec![&Locks::Barrier, &Locks::Tables(vec![t]), &Locks::Barrier]
    );
}
