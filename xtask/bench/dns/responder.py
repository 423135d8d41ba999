# Test DNS responder on port 53 of ADDR (default 127.0.0.1), UDP and TCP: A and AAAA for
# any name (127.0.0.1, ::1), a CNAME first for names starting with `cname.`.
import socket, struct, sys, threading
def name_wire(n):
    out=b''
    for l in n.strip('.').split('.'):
        out+=bytes([len(l)])+l.encode()
    return out+b'\0'
def parse_q(msg):
    i=12; labels=[]
    while msg[i]:
        l=msg[i]; labels.append(msg[i+1:i+1+l].decode()); i+=1+l
    i+=1
    qtype,qclass=struct.unpack('>HH',msg[i:i+4])
    return '.'.join(labels), qtype, msg[12:i+4]
def answer(msg):
    qid=msg[:2]; name,qtype,qraw=parse_q(msg)
    rrs=[]
    target=name
    if name.lower().startswith('cname.'):
        target='edge.'+name
        rrs.append(name_wire(name)+struct.pack('>HHIH',5,1,60,len(name_wire(target)))+name_wire(target))
    if qtype==1: rrs.append(name_wire(target)+struct.pack('>HHIH',1,1,60,4)+bytes([127,0,0,1]))
    if qtype==28: rrs.append(name_wire(target)+struct.pack('>HHIH',28,1,60,16)+socket.inet_pton(socket.AF_INET6,'::1'))
    return qid+struct.pack('>HHHHH',0x8180,1,len(rrs),0,0)+qraw+b''.join(rrs)
def udp(addr):
    s=socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1)
    s.bind((addr,53))
    while True:
        m,a=s.recvfrom(4096)
        try: s.sendto(answer(m),a)
        except Exception as e: print(e,file=sys.stderr)
def tcp(addr):
    s=socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1)
    s.bind((addr,53)); s.listen(16)
    while True:
        c,_=s.accept()
        try:
            while True:
                h=c.recv(2)
                if len(h)<2: break
                n=struct.unpack('>H',h)[0]; m=b''
                while len(m)<n: m+=c.recv(n-len(m))
                r=answer(m); c.sendall(struct.pack('>H',len(r))+r)
        except Exception as e: print(e,file=sys.stderr)
        c.close()
addr=sys.argv[1] if len(sys.argv)>1 else '127.0.0.1'
threading.Thread(target=tcp,args=(addr,),daemon=True).start()
udp(addr)
