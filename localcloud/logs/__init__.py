"""CloudWatch Logs in the local cloud: where AWS puts each service's log lines (``names``), and the
background shipper that puts them there in the local moto (``shipper``)."""
