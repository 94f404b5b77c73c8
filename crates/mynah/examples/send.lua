-- wrk script: the send of `mynah bench` (a text to one user, 360dialog dialect) against
-- `mynah sandbox` or the floor server (`floor_server.rs`, beside this file).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["D360-API-KEY"] = os.getenv("D360_API_KEY") or "mynah-dev-key"
wrk.body = '{"messaging_product":"whatsapp","to":"4915100000001","type":"text","text":{"body":"floor comparison"}}'
