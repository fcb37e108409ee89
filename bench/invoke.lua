-- wrk script: blocking invokes of one action with the guest key (used by bench/throughput.py and bench/hello.py).
wrk.method = "POST"
wrk.body = '{"name": "wrk"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic MjNiYzQ2YjEtNzFmNi00ZWQ1LThjNTQtODE2YWE0ZjhjNTAyOjEyM3pPM3haQ0xyTU42djJCS0sxZFhZRnBYbFBrY2NPRnFtMTJDZEFzTWdSVTRWck5aOWx5R1ZDR3VNREdJd1A="
