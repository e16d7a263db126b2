#!/usr/bin/env python3
# Origin: copied unchanged (apart from this comment) from the team's shared benchmark folder
# (bench/gen_emails.py), where it was written for Loket's benchmarks so that figures compare with
# other systems fed the same mail (the Request Tracker reference figures are in BENCHMARKS.md).
# Standard library only, no third-party code; it carries no licence notice of its own and is
# distributed under the project's licence, Apache-2.0.
"""Generate realistic inbound helpdesk emails (RFC 5322) in Indonesian.

Writes one .eml file per message into OUTDIR (000001.eml, 000002.eml, ...) plus
OUTDIR/manifest.jsonl with one JSON object per message, in delivery order:

  {"file": "000007.eml", "seq": 7, "is_reply": true,
   "ticket_index": null, "target_ticket_index": 2, "target_ticket_id": 3,
   "message_id": "<...>", "from": "...", "bytes": 2314, "kind": "reply"}

* New requests get ticket_index = 0, 1, 2, ... in order of appearance.
  A system that numbers tickets sequentially from --first-ticket-id will give the
  k-th new request the id first_ticket_id + k (RT on a fresh database: 1 + k).
* Replies carry "[<tag> #<id>]" in the Subject (tag = --subject-tag, id =
  first_ticket_id + target_ticket_index) and In-Reply-To/References pointing at
  the original Message-ID, and come from the original requester.
  A reply always targets a ticket created earlier in the stream.

Mix (defaults): ~30% replies; of all messages ~20% multipart/alternative
(text + HTML), ~20% multipart/mixed with a small attachment (PNG, PDF, CSV or
log text, 1-8 KB before base64). Text bodies are ~1-4 KB.

Files use CRLF line ends (RFC 5322 / SMTP wire form); --lf writes LF instead.
Deterministic for a given --seed (standard library only).

Usage: gen_emails.py OUTDIR -n 1000 --seed 42
"""
import argparse
import base64
import datetime as dt
import json
import os
import random
import struct
import sys
import zlib
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

FIRST_NAMES = [
    "Budi", "Siti", "Agus", "Dewi", "Rudi", "Rina", "Andi", "Sri", "Eko", "Wulan",
    "Hendra", "Fitri", "Yusuf", "Putri", "Dian", "Ahmad", "Nur", "Bambang", "Ayu",
    "Joko", "Maya", "Rizky", "Indah", "Fajar", "Lestari", "Teguh", "Kartika",
    "Hadi", "Ratna", "Irfan", "Citra", "Wahyu", "Anisa", "Dimas", "Novi", "Arif",
    "Yohanes", "Made", "Ketut", "Nyoman", "Gede", "Desi", "Sari", "Taufik", "Lina",
]
LAST_NAMES = [
    "Santoso", "Wijaya", "Saputra", "Kusuma", "Pratama", "Hidayat", "Setiawan",
    "Nugroho", "Siregar", "Nasution", "Simanjuntak", "Lubis", "Harahap", "Gunawan",
    "Hartono", "Susanto", "Purnomo", "Wibowo", "Rahman", "Hakim", "Sitompul",
    "Tanjung", "Suryadi", "Halim", "Putra", "Permana", "Ramadhan", "Utomo",
    "Sembiring", "Pangaribuan", "Manurung", "Daulay", "Suharto", "Yulianti",
]
DOMAINS = [
    "gmail.com", "yahoo.co.id", "outlook.co.id", "ptmajujaya.co.id",
    "sinarharapan-logistik.co.id", "kopmakmur.or.id", "univ-nusantara.ac.id",
    "pemkab-sleman.go.id", "tokoberkah.id", "cvsentosa.com", "bankdesa.co.id",
]
DEPARTMENTS = [
    "Keuangan", "SDM", "Pemasaran", "Gudang", "Akuntansi", "Produksi", "Legal",
    "Pengadaan", "Layanan Pelanggan", "Operasional", "TI", "Sekretariat",
]
TITLES = ["Staf", "Supervisor", "Manajer", "Kepala Bagian", "Admin", "Analis", "Koordinator"]
CITIES = ["Jakarta", "Bandung", "Surabaya", "Yogyakarta", "Semarang", "Medan", "Makassar",
          "Denpasar", "Palembang", "Balikpapan", "Malang", "Pontianak"]
MAILERS = [
    "Microsoft Outlook 16.0", "Mozilla Thunderbird 115.6.0", "Apple Mail (2.3731.700.6)",
    "Roundcube Webmail/1.6.5", "K-9 Mail for Android", None, None,
]

# topic: (subject variants, opening problem sentences, detail sentences)
TOPICS = [
    (["Tidak bisa login ke email kantor", "Gagal masuk akun email", "Password email terkunci"],
     ["Sejak tadi pagi saya tidak bisa login ke email kantor.",
      "Akun email saya terkunci setelah beberapa kali salah memasukkan kata sandi.",
      "Saya tidak dapat masuk ke webmail, muncul pesan 'kredensial tidak valid'."],
     ["Saya sudah mencoba mengganti kata sandi melalui portal, tetapi tautan reset tidak pernah sampai.",
      "Di ponsel email masih tersinkron, hanya di laptop yang bermasalah.",
      "Kemarin sore semuanya masih normal dan saya tidak mengubah pengaturan apa pun.",
      "Rekan satu ruangan saya juga mengalami hal yang sama sejak pukul 08.00 WIB."]),
    (["Printer lantai 3 tidak bisa mencetak", "Printer macet terus", "Permintaan perbaikan printer"],
     ["Printer di lantai 3 dekat ruang rapat tidak bisa mencetak sama sekali.",
      "Setiap kali mencetak lebih dari lima halaman, kertas selalu macet.",
      "Printer bagian keuangan menampilkan pesan error 'toner low' padahal toner baru diganti."],
     ["Antrean cetak di komputer saya menumpuk dan statusnya 'error - printing'.",
      "Kami sudah mencoba mematikan dan menyalakan ulang printer tetapi tidak berhasil.",
      "Dokumen yang perlu dicetak adalah laporan bulanan yang harus diserahkan hari ini.",
      "Lampu indikator berwarna oranye dan berkedip terus."]),
    (["VPN tidak bisa tersambung", "Koneksi VPN putus-putus", "Akses VPN dari rumah gagal"],
     ["Saya tidak bisa tersambung ke VPN kantor saat bekerja dari rumah.",
      "Koneksi VPN saya terputus setiap sepuluh menit sekali.",
      "Aplikasi VPN menampilkan pesan 'authentication failed' walaupun kata sandi benar."],
     ["Internet di rumah normal, saya sudah cek dengan membuka situs lain.",
      "Saya menggunakan laptop kantor dengan Windows 11 yang baru diperbarui minggu lalu.",
      "Tanpa VPN saya tidak bisa mengakses aplikasi ERP dan folder bersama.",
      "Kode OTP sudah saya masukkan dengan benar sebanyak tiga kali."]),
    (["Laptop sangat lambat", "Laptop sering hang", "Laptop tidak mau menyala"],
     ["Laptop kantor saya menjadi sangat lambat sejak pembaruan sistem kemarin.",
      "Laptop saya sering hang ketika membuka lebih dari dua aplikasi.",
      "Laptop tidak mau menyala sama sekali meskipun sudah diisi daya semalaman."],
     ["Nomor inventaris laptop tersebut adalah INV-{num4}.",
      "Kipas laptop terdengar sangat keras dan bagian bawahnya cukup panas.",
      "Saya khawatir ada data penting yang belum sempat dicadangkan.",
      "Mohon dibantu karena minggu depan saya harus presentasi ke klien."]),
    (["Permintaan akses folder bersama", "Minta hak akses aplikasi ERP", "Akses ke sistem absensi"],
     ["Saya membutuhkan akses ke folder bersama bagian {dept}.",
      "Mohon diberikan hak akses ke modul pembelian di aplikasi ERP.",
      "Saya karyawan baru dan belum bisa masuk ke sistem absensi online."],
     ["Atasan saya, Bapak/Ibu {boss}, sudah menyetujui permintaan ini melalui email.",
      "Akses diperlukan untuk menyiapkan laporan audit triwulan.",
      "NIK karyawan saya adalah {num6}.",
      "Jika ada formulir yang perlu diisi, mohon dikirimkan kepada saya."]),
    (["Tagihan ganda bulan ini", "Pertanyaan tentang invoice", "Pembayaran belum terkonfirmasi"],
     ["Kami menerima dua tagihan dengan nomor yang sama untuk bulan ini.",
      "Saya ingin menanyakan rincian biaya pada invoice nomor INV/{num4}/{year}.",
      "Pembayaran kami sudah ditransfer tiga hari lalu tetapi statusnya masih 'belum dibayar'."],
     ["Bukti transfer dari Bank {bank} sudah saya lampirkan.",
      "Total yang ditagihkan adalah Rp {amount}, sedangkan kontrak kami hanya Rp {amount2}.",
      "Mohon dilakukan pengecekan dan koreksi sebelum tanggal jatuh tempo.",
      "Bagian keuangan kami membutuhkan faktur pajak yang sudah diperbaiki."]),
    (["Wi-Fi kantor tidak stabil", "Internet mati di ruang rapat", "Jaringan lambat sekali"],
     ["Koneksi Wi-Fi di ruang rapat lantai 2 sering terputus.",
      "Internet di seluruh lantai 5 mati sejak pukul 10.00.",
      "Akses jaringan sangat lambat, membuka satu halaman butuh lebih dari satu menit."],
     ["Sinyal Wi-Fi terlihat penuh tetapi tidak ada koneksi internet.",
      "Kabel LAN di meja saya juga tidak mendapatkan alamat IP.",
      "Hari ini ada rapat daring penting dengan mitra dari {city}.",
      "Kami sudah mencoba menggunakan jaringan tamu dan hasilnya sama saja."]),
    (["Aplikasi kasir error", "Error saat menyimpan transaksi", "Aplikasi crash ketika export laporan"],
     ["Aplikasi kasir di cabang {city} menampilkan error saat menyimpan transaksi.",
      "Setiap kali saya mengekspor laporan ke Excel, aplikasi langsung tertutup.",
      "Muncul pesan 'database connection timeout' ketika membuka menu stok."],
     ["Pesan error lengkap: 'ERR-{num4}: gagal menulis ke tabel transaksi'.",
      "Masalah ini menyebabkan antrean pelanggan cukup panjang di kasir.",
      "Versi aplikasi yang terpasang adalah 4.{num1}.{num2}.",
      "Tangkapan layar error saya lampirkan pada email ini."]),
    (["Permintaan instalasi software", "Mohon instal aplikasi desain", "Lisensi Office kedaluwarsa"],
     ["Mohon bantuan untuk menginstal aplikasi pengolah data statistik di komputer saya.",
      "Lisensi Microsoft Office di laptop saya sudah kedaluwarsa.",
      "Saya membutuhkan aplikasi desain grafis untuk keperluan materi promosi."],
     ["Komputer saya tidak memiliki hak administrator sehingga tidak bisa menginstal sendiri.",
      "Kebutuhan ini sudah dianggarkan dalam rencana kerja bagian {dept}.",
      "Mohon diinformasikan jika diperlukan persetujuan tambahan.",
      "Akan sangat membantu jika bisa dipasang sebelum hari Jumat."]),
    (["Pengiriman barang belum sampai", "Status pesanan tidak berubah", "Barang yang diterima rusak"],
     ["Pesanan kami dengan nomor PO-{num6} belum sampai padahal estimasi tiba kemarin.",
      "Status pesanan kami tidak berubah sejak lima hari yang lalu.",
      "Sebagian barang yang kami terima dalam kondisi rusak."],
     ["Nomor resi pengiriman adalah JNE{num6}{num4}.",
      "Foto kondisi paket saat diterima saya lampirkan.",
      "Kami membutuhkan barang tersebut untuk produksi minggu ini.",
      "Mohon informasi kapan barang pengganti bisa dikirim ke gudang {city}."]),
]
GREETINGS = ["Selamat pagi,", "Selamat siang,", "Selamat sore,", "Halo tim helpdesk,",
             "Dengan hormat,", "Yth. Tim Dukungan TI,", "Pagi Pak/Bu,", "Assalamualaikum,"]
FILLER = [
    "Sebelumnya saya mohon maaf jika permintaan ini kurang jelas.",
    "Berikut saya jelaskan kronologinya secara singkat.",
    "Masalah ini cukup mengganggu pekerjaan kami sehari-hari.",
    "Saya sudah mencoba beberapa langkah yang disarankan di panduan internal.",
    "Sejauh ini belum ada pesan error lain yang muncul.",
    "Kami berharap masalah ini bisa segera ditangani.",
    "Jika diperlukan, saya bisa dihubungi melalui telepon atau WhatsApp.",
    "Saya bersedia jika teknisi perlu datang langsung ke meja saya.",
    "Mohon informasi perkiraan waktu penyelesaiannya.",
    "Kondisi ini sudah berlangsung sejak {day} lalu.",
    "Tim kami berjumlah {num1} orang dan semuanya terdampak.",
    "Saya sudah menghapus cache peramban dan mencoba peramban lain.",
    "Saya juga sudah memastikan kabel dan colokan terpasang dengan benar.",
    "Sebagai informasi, komputer saya menggunakan sistem operasi Windows 10.",
    "Terlampir tangkapan layar dan catatan yang mungkin membantu.",
    "Kami membutuhkan solusi sementara sambil menunggu perbaikan permanen.",
    "Apakah ada jadwal pemeliharaan sistem yang sedang berlangsung?",
    "Mohon kiranya permintaan ini bisa diprioritaskan.",
    "Kami tidak melakukan perubahan konfigurasi apa pun sebelum masalah ini muncul.",
    "Beberapa pelanggan sudah menanyakan hal ini kepada kami melalui telepon.",
    "Saya sudah berkoordinasi dengan atasan saya terkait kendala ini.",
    "Laporan ini saya kirimkan juga atas nama rekan-rekan di bagian {dept}.",
    "Masalahnya terjadi secara acak, kadang normal lalu bermasalah lagi.",
    "Terakhir kali hal serupa terjadi sekitar dua bulan lalu dan sempat diperbaiki oleh tim TI.",
    "Kalau boleh tahu, apakah ada panduan yang bisa saya ikuti sendiri?",
    "Kami berada di kantor cabang {city}, gedung B lantai {num1}.",
    "Saya sudah mencatat waktu kejadian dan pesan yang muncul di layar.",
    "Sebagai perbandingan, komputer lain di ruangan yang sama berjalan normal.",
    "Hal ini menghambat proses penutupan buku akhir bulan.",
    "Mohon konfirmasi apakah permintaan ini sudah diterima dan sedang diproses.",
    "Apabila perlu akses jarak jauh, saya siap menyalakan aplikasi remote desktop.",
    "Jam kerja saya mulai pukul 08.00 sampai 16.30 WIB.",
    "Saya khawatir masalah ini berdampak pada data transaksi hari ini.",
    "Sebelumnya saya sudah menghubungi nomor ekstensi helpdesk tetapi tidak ada yang menjawab.",
    "Kami juga menerima notifikasi aneh di layar sebelum masalah ini terjadi.",
    "Nomor aset perangkat tercantum pada stiker di bagian belakang, yaitu AST-{num6}.",
    "Mohon maaf merepotkan, karena ini cukup mendesak bagi tim kami.",
    "Jika ada biaya tambahan untuk perbaikan, mohon diinformasikan terlebih dahulu.",
    "Kami menggunakan paket layanan bisnis sesuai kontrak nomor KTR-{num4}.",
    "Saya juga sudah menanyakan ke rekan di bagian TI cabang, tetapi belum ada solusi.",
]
CLOSINGS = ["Terima kasih atas bantuannya.", "Atas perhatian dan bantuannya saya ucapkan terima kasih.",
            "Mohon bantuannya, terima kasih.", "Terima kasih banyak sebelumnya."]
SIGNOFFS = ["Salam,", "Hormat saya,", "Salam hangat,", "Terima kasih,", "Wassalam,"]
REPLY_OPENERS = [
    "Terima kasih atas tanggapannya.", "Berikut informasi tambahan yang diminta.",
    "Masalahnya masih terjadi sampai sekarang.", "Saya sudah mencoba langkah yang disarankan.",
    "Mohon maaf, saya lupa melampirkan detail sebelumnya.",
    "Apakah sudah ada perkembangan untuk tiket ini?",
    "Setelah dicoba ulang, masalahnya muncul lagi pagi ini.",
]
REPLY_DETAILS = [
    "Pesan error yang muncul sekarang sedikit berbeda dari sebelumnya.",
    "Saya sudah me-restart perangkat sebanyak dua kali.",
    "Rekan saya di ruangan sebelah tidak mengalami masalah yang sama.",
    "Jika memungkinkan, saya bisa ditelepon di nomor ekstensi {num4}.",
    "Saya akan berada di kantor sampai pukul 17.00 hari ini.",
    "Mohon dikabari jika masih ada data lain yang diperlukan.",
    "Untuk sementara saya menggunakan komputer cadangan.",
    "Masalah ini sekarang juga berdampak ke pelanggan kami.",
]
DAYS = ["Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"]
BANKS = ["BCA", "Mandiri", "BRI", "BNI", "BSI", "CIMB Niaga"]


def fill(rng, s, ctx):
    return s.format(
        num1=rng.randint(2, 9), num2=rng.randint(0, 30), num4=rng.randint(1000, 9999),
        num6=rng.randint(100000, 999999), year=rng.choice([2024, 2025]),
        dept=rng.choice(DEPARTMENTS), boss=ctx["boss"], city=rng.choice(CITIES),
        bank=rng.choice(BANKS), day=rng.choice(DAYS),
        amount=f"{rng.randint(1, 90) * 250000:,}".replace(",", "."),
        amount2=f"{rng.randint(1, 90) * 250000:,}".replace(",", "."),
    )


def signature(person):
    return "\n".join([
        "--",
        person["name"],
        f"{person['title']} {person['dept']}",
        person["org"],
        f"Telp: +62 {person['phone']}",
    ])


def make_paragraphs(rng, ctx, first, pool, target):
    paras, cur, size = [], [first], len(first)
    bag = []
    while size < target:
        if not bag:  # draw without replacement; refill when exhausted
            bag = list(pool + FILLER)
            rng.shuffle(bag)
        s = fill(rng, bag.pop(), ctx)
        cur.append(s)
        size += len(s) + 1
        if len(cur) >= rng.randint(2, 5):
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return paras


def new_request_body(rng, person, topic, target):
    ctx = {"boss": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"}
    _, openers, details = topic
    paras = make_paragraphs(rng, ctx, fill(rng, rng.choice(openers), ctx), details, target)
    return "\n\n".join([rng.choice(GREETINGS)] + paras + [rng.choice(CLOSINGS), rng.choice(SIGNOFFS), signature(person)]) + "\n"


def reply_body(rng, person, orig_text, orig_date, target):
    ctx = {"boss": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"}
    new_target = max(300, target - min(len(orig_text), target // 2))
    paras = make_paragraphs(rng, ctx, rng.choice(REPLY_OPENERS), REPLY_DETAILS, new_target)
    quoted_lines = orig_text.splitlines()[: rng.randint(6, 30)]
    quote = "\n".join(("> " + l) if l else ">" for l in quoted_lines)
    when = format_datetime(orig_date)
    return ("\n\n".join(paras + [rng.choice(SIGNOFFS), person["name"]])
            + f"\n\nPada {when}, {person['name']} <{person['email']}> menulis:\n" + quote + "\n")


def html_of(text):
    import html
    parts = []
    for para in text.split("\n\n"):
        esc = html.escape(para).replace("\n", "<br>\n")
        parts.append(f"<p>{esc}</p>")
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head>"
            "<body style=\"font-family: Calibri, Arial, sans-serif; font-size: 11pt\">\n"
            + "\n".join(parts) + "\n</body></html>\n")


def png_bytes(rng, target):
    # A real (tiny, noisy) PNG so that type sniffers accept it.
    w = 32
    h = max(4, target // (w * 3))
    raw = b"".join(b"\x00" + bytes(rng.getrandbits(8) for _ in range(w * 3)) for _ in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def pdf_bytes(rng, target):
    body = " ".join(rng.choice(FILLER) for _ in range(max(3, target // 60)))
    stream = f"BT /F1 10 Tf 40 800 Td ({body[:target]}) Tj ET".encode("latin-1", "replace")
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out = b"%PDF-1.4\n"
    for i, o in enumerate(objs, 1):
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    return out + b"trailer << /Root 1 0 R >>\n%%EOF\n"


def attachment(rng, seq):
    kind = rng.choice(["png", "png", "pdf", "csv", "log"])
    size = rng.randint(1024, 8192)
    if kind == "png":
        return png_bytes(rng, size), "image", "png", f"tangkapan-layar-{seq}.png"
    if kind == "pdf":
        return pdf_bytes(rng, size), "application", "pdf", f"bukti-transfer-{seq}.pdf"
    if kind == "csv":
        rows = ["tanggal;no_transaksi;jumlah;status"]
        while sum(len(r) + 1 for r in rows) < size:
            rows.append(f"2025-0{rng.randint(1, 9)}-{rng.randint(10, 28)};TRX{rng.randint(100000, 999999)};"
                        f"{rng.randint(10, 9999) * 1000};{rng.choice(['gagal', 'sukses', 'tertunda'])}")
        return ("\n".join(rows) + "\n").encode(), "text", "csv", f"data-transaksi-{seq}.csv"
    lines = []
    while sum(len(l) + 1 for l in lines) < size:
        lines.append(f"2025-03-{rng.randint(10, 28)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
                     f"{rng.randint(0, 59):02d} ERROR [{rng.choice(['db', 'net', 'auth', 'app'])}] "
                     f"kode={rng.randint(100, 999)} pesan=\"{rng.choice(FILLER)}\"")
    return ("\n".join(lines) + "\n").encode(), "text", "plain", f"log-aplikasi-{seq}.txt"


def person_for(rng, i):
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    dom = rng.choice(DOMAINS)
    local = rng.choice([f"{first}.{last}", f"{first}{last[0]}", f"{first}{rng.randint(1, 99)}",
                        f"{first[0]}{last}"]).lower()
    org = {"gmail.com": "", "yahoo.co.id": "", "outlook.co.id": ""}.get(dom, None)
    if org is None:
        org = "PT " + dom.split(".")[0].replace("-", " ").title()
    return {"name": f"{first} {last}", "email": f"{local}@{dom}", "dept": rng.choice(DEPARTMENTS),
            "title": rng.choice(TITLES), "org": org or "Perorangan",
            "phone": f"8{rng.randint(11, 99)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"}


def received_headers(rng, when, sender_domain):
    hops = []
    t = when
    for _ in range(rng.randint(1, 3)):
        t = t + dt.timedelta(seconds=rng.randint(0, 4))
        ip = f"203.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        hops.append(f"from mail{rng.randint(1, 9)}.{sender_domain} (mail{rng.randint(1, 9)}.{sender_domain} [{ip}])"
                    f" by mx.rt.example (Postfix) with ESMTPS id {rng.getrandbits(40):010X}"
                    f" for <rt@rt.example>; {format_datetime(t)}")
    return list(reversed(hops))


def build(args):
    rng = random.Random(args.seed)
    os.makedirs(args.outdir, exist_ok=True)
    tz = dt.timezone(dt.timedelta(hours=7))
    t = dt.datetime(2025, 3, 3, 8, 0, 0, tzinfo=tz)
    n_people = max(10, int(args.n * 0.4))
    people = [person_for(rng, i) for i in range(n_people)]
    tickets = []   # per created ticket: dict(person, subject, msgid, text, date)
    manifest = []
    for seq in range(1, args.n + 1):
        t = t + dt.timedelta(seconds=rng.randint(5, 240))
        is_reply = bool(tickets) and rng.random() < args.reply_ratio
        target = rng.randint(1000, 4000)
        msg = EmailMessage(policy=SMTP)
        if is_reply:
            # replies cluster on recent tickets, with a long tail
            k = len(tickets) - 1 - min(len(tickets) - 1, int(rng.expovariate(1 / 20)))
            tk = tickets[k]
            person = tk["person"]
            tid = args.first_ticket_id + k
            subject = f"Re: [{args.subject_tag} #{tid}] {tk['subject']}"
            text = reply_body(rng, person, tk["text"], tk["date"], target)
            msg["In-Reply-To"] = tk["msgid"]
            msg["References"] = tk["msgid"]
        else:
            person = rng.choice(people)
            topic = rng.choice(TOPICS)
            subject = rng.choice(topic[0])
            if rng.random() < 0.15:
                subject = rng.choice(["PENTING: ", "Mohon bantuan: ", "[Urgent] ", "Tolong – "]) + subject
            text = new_request_body(rng, person, topic, target)
        msgid = f"<{t.strftime('%Y%m%d%H%M%S')}.{rng.getrandbits(48):012x}.{seq}@{person['email'].split('@')[1]}>"
        for h in received_headers(rng, t, person["email"].split("@")[1]):
            msg["Received"] = h
        msg["Date"] = format_datetime(t)
        msg["From"] = formataddr((person["name"], person["email"]))
        msg["To"] = formataddr(("Helpdesk", args.to))
        msg["Subject"] = subject
        msg["Message-ID"] = msgid
        mailer = rng.choice(MAILERS)
        if mailer:
            msg["X-Mailer"] = mailer
        shape = rng.random()
        if shape < args.html_ratio:
            kind = "alternative"
            msg.set_content(text, charset="utf-8", cte="quoted-printable")
            msg.add_alternative(html_of(text), subtype="html", charset="utf-8", cte="quoted-printable")
        elif shape < args.html_ratio + args.attach_ratio:
            kind = "attachment"
            msg.set_content(text, charset="utf-8", cte="quoted-printable")
            data, maintype, subtype, fname = attachment(rng, seq)
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=fname)
        else:
            kind = "plain"
            msg.set_content(text, charset="utf-8", cte=rng.choice(["quoted-printable", "8bit"]))
        if msg.is_multipart():  # fixed boundary so output is byte-identical for a seed
            msg.set_boundary(f"=_helpdesk_{args.seed}_{seq}_{rng.getrandbits(48):012x}")
        raw = msg.as_bytes(policy=SMTP)  # CRLF line ends, as on the wire
        if args.lf:
            raw = raw.replace(b"\r\n", b"\n")
        fname = f"{seq:06d}.eml"
        with open(os.path.join(args.outdir, fname), "wb") as f:
            f.write(raw)
        entry = {"file": fname, "seq": seq, "is_reply": is_reply,
                 "ticket_index": None, "target_ticket_index": None, "target_ticket_id": None,
                 "message_id": msgid, "from": person["email"], "bytes": len(raw),
                 "kind": "reply-" + kind if is_reply else kind}
        if is_reply:
            entry["target_ticket_index"] = k
            entry["target_ticket_id"] = args.first_ticket_id + k
        else:
            entry["ticket_index"] = len(tickets)
            tickets.append({"person": person, "subject": subject, "msgid": msgid, "text": text, "date": t})
        manifest.append(entry)
    with open(os.path.join(args.outdir, "manifest.jsonl"), "w") as f:
        for e in manifest:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("-n", type=int, default=1000, help="number of messages (default 1000)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--reply-ratio", type=float, default=0.30)
    ap.add_argument("--html-ratio", type=float, default=0.20, help="share sent as multipart/alternative")
    ap.add_argument("--attach-ratio", type=float, default=0.20, help="share with a small attachment")
    ap.add_argument("--subject-tag", default="rt.example", help="tag used in reply subjects: [TAG #ID]")
    ap.add_argument("--first-ticket-id", type=int, default=1)
    ap.add_argument("--to", default="rt@rt.example")
    ap.add_argument("--lf", action="store_true",
                    help="LF line ends (as a local MTA pipes/stores mail); default CRLF as on the SMTP wire")
    args = ap.parse_args()
    m = build(args)
    replies = sum(e["is_reply"] for e in m)
    total = sum(e["bytes"] for e in m)
    print(f"wrote {len(m)} messages ({len(m) - replies} new, {replies} replies, "
          f"{total / 1024:.0f} KiB, mean {total / max(1, len(m)):.0f} B) to {args.outdir}", file=sys.stderr)


if __name__ == "__main__":
    main()
